# vit::text: the tokenizers (<vit/tokenizer.hpp>) on top of vit::core, with
# the libraries they use when found on the machine that builds the program:
# utf8proc (NFC, categories, case; both tokenizers) and sentencepiece (the
# SigLIP Unigram model). A missing one only disables the tokenizer needing it,
# which then throws a vit::error naming the package (Debian: libutf8proc-dev,
# libsentencepiece-dev).
find_path(VIT_UTF8PROC_INCLUDE_DIR utf8proc.h)
find_library(VIT_UTF8PROC_LIBRARY NAMES utf8proc)
find_path(VIT_SENTENCEPIECE_INCLUDE_DIR sentencepiece_processor.h)
find_library(VIT_SENTENCEPIECE_LIBRARY NAMES sentencepiece)

# Gives `target` (an INTERFACE library) the tokenizer libraries found.
function(vit_use_text_libraries target)
  if(VIT_UTF8PROC_INCLUDE_DIR AND VIT_UTF8PROC_LIBRARY)
    target_include_directories(${target} SYSTEM INTERFACE ${VIT_UTF8PROC_INCLUDE_DIR})
    target_link_libraries(${target} INTERFACE ${VIT_UTF8PROC_LIBRARY})
    target_compile_definitions(${target} INTERFACE VIT_HAVE_UTF8PROC=1)
  endif()
  if(VIT_SENTENCEPIECE_INCLUDE_DIR AND VIT_SENTENCEPIECE_LIBRARY)
    target_include_directories(${target} SYSTEM INTERFACE ${VIT_SENTENCEPIECE_INCLUDE_DIR})
    target_link_libraries(${target} INTERFACE ${VIT_SENTENCEPIECE_LIBRARY})
    target_compile_definitions(${target} INTERFACE VIT_HAVE_SENTENCEPIECE=1)
  endif()
endfunction()

# In the build tree: vit::text = vit::core + the libraries (through a
# build-only target, as stb: an installed vit finds them again, see
# vitConfig.cmake).
if(TARGET vit_core AND NOT TARGET vit_text)
  add_library(vit_text_libraries INTERFACE)
  vit_use_text_libraries(vit_text_libraries)
  add_library(vit_text INTERFACE)
  add_library(vit::text ALIAS vit_text)
  set_target_properties(vit_text PROPERTIES EXPORT_NAME text)
  target_link_libraries(vit_text INTERFACE vit_core $<BUILD_INTERFACE:vit_text_libraries>)
endif()
