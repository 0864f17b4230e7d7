# vit_catch_discover_tests(TARGET [EXTRA_ARGS arg...])
#
# One ctest per Catch2 test case of TARGET, labelled with the case's tags
# ([hostile][safetensors] -> LABELS hostile;safetensors), so that ctest -L/-LE
# select by tag. Catch2 2.13's catch_discover_tests sets no labels, hence this.
# The cases are listed at ctest time by vitCatchAddTests.cmake, run through
# TEST_INCLUDE_FILES, under the target's CROSSCOMPILING_EMULATOR when it has one.

set(_VIT_CATCH_ADD_TESTS ${CMAKE_CURRENT_LIST_DIR}/vitCatchAddTests.cmake)

# `out` = `value` as one CMake bracket argument, whatever it contains.
function(_vit_bracket out value)
  set(eq "=")
  while(value MATCHES "]${eq}]")
    string(APPEND eq "=")
  endwhile()
  set(${out} "[${eq}[${value}]${eq}]" PARENT_SCOPE)
endfunction()

# `out` = set(`name` elements...) with each element a bracket argument.
function(_vit_set_command out name)
  set(cmd "set(${name}")
  foreach(v IN LISTS ARGN)
    _vit_bracket(v "${v}")
    string(APPEND cmd " ${v}")
  endforeach()
  set(${out} "${cmd})\n" PARENT_SCOPE)
endfunction()

function(vit_catch_discover_tests target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "EXTRA_ARGS")
  get_property(emulator TARGET ${target} PROPERTY CROSSCOMPILING_EMULATOR)
  set(include_file ${CMAKE_CURRENT_BINARY_DIR}/${target}_include.cmake)

  _vit_set_command(set_emulator VIT_CATCH_EMULATOR ${emulator})
  _vit_set_command(set_args VIT_CATCH_EXTRA_ARGS ${arg_EXTRA_ARGS})
  _vit_bracket(exe "$<TARGET_FILE:${target}>")
  _vit_bracket(workdir "${CMAKE_CURRENT_BINARY_DIR}")
  _vit_bracket(tests_file "${CMAKE_CURRENT_BINARY_DIR}/${target}_tests.cmake")
  _vit_bracket(script "${_VIT_CATCH_ADD_TESTS}")
  file(GENERATE OUTPUT ${include_file} CONTENT
"set(VIT_CATCH_INCLUDE_FILE \"\${CMAKE_CURRENT_LIST_FILE}\")
set(VIT_CATCH_TARGET ${target})
set(VIT_CATCH_EXECUTABLE ${exe})
set(VIT_CATCH_WORKING_DIR ${workdir})
set(VIT_CATCH_TESTS_FILE ${tests_file})
${set_emulator}${set_args}include(${script})
")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES ${include_file})
endfunction()
