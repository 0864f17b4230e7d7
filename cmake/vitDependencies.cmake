# Finds what the library needs and attaches it to a target. Shared by the build
# tree (CMakeLists.txt) and the installed package (vitConfig.cmake), so both
# resolve dependencies the same way.
include(CMakeFindDependencyMacro)
include(GNUInstallDirs)

find_package(Eigen3 3.3 REQUIRED NO_MODULE)
find_package(nlohmann_json 3.2 REQUIRED)
find_package(Threads REQUIRED)

# stb_image: headers are required; Debian's libstb also ships the compiled
# implementation, which we link when present. Without it, exactly one .cpp of
# the application defines STB_IMAGE_IMPLEMENTATION and
# STB_IMAGE_WRITE_IMPLEMENTATION before including <stb_image.h> and
# <stb_image_write.h> (see README).
find_path(VIT_STB_INCLUDE_DIR stb_image.h PATH_SUFFIXES stb)
if(NOT VIT_STB_INCLUDE_DIR)
  message(FATAL_ERROR "vit: stb_image.h not found (Debian: apt-get install libstb-dev)")
endif()
find_library(VIT_STB_LIBRARY NAMES stb)

if(NOT DEFINED VIT_WITH_LIBJPEG)
  set(VIT_WITH_LIBJPEG ON)
endif()
if(VIT_WITH_LIBJPEG)
  find_package(JPEG QUIET)
endif()

function(vit_link_dependencies target)
  target_link_libraries(${target} INTERFACE Eigen3::Eigen nlohmann_json::nlohmann_json Threads::Threads)
  target_include_directories(${target} SYSTEM INTERFACE ${VIT_STB_INCLUDE_DIR})
  if(VIT_STB_LIBRARY)
    target_link_libraries(${target} INTERFACE ${VIT_STB_LIBRARY})
  endif()
  if(VIT_WITH_LIBJPEG AND JPEG_FOUND)
    target_link_libraries(${target} INTERFACE JPEG::JPEG)
    target_compile_definitions(${target} INTERFACE VIT_HAVE_LIBJPEG=1)
  endif()
endfunction()
