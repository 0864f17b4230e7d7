# What vit's targets need, found the same way by the build tree
# (CMakeLists.txt) and by the installed package (vitConfig.cmake).

# Packages the exported targets name, as find_package() arguments: the build
# tree finds them with find_package(... REQUIRED), and vitInstall.cmake writes
# the same list into vitConfig.cmake as find_dependency() calls.
set(VIT_PACKAGE_DEPENDENCIES "Eigen3 3.3 NO_MODULE" "nlohmann_json 3.2" "Threads")

# stb depends on the machine that builds the program, not on the one that
# installed vit, so it is found here each time and never exported. Headers are
# required; Debian's libstb also ships the implementation compiled.
if(NOT DEFINED VIT_USE_SYSTEM_STB)
  set(VIT_USE_SYSTEM_STB ON)
endif()
find_path(VIT_STB_INCLUDE_DIR stb_image.h PATH_SUFFIXES stb)
if(VIT_USE_SYSTEM_STB)
  find_library(VIT_STB_LIBRARY NAMES stb)
endif()

# Gives `target` stb: its headers, and libstb or else `impl` (vit_stb.cpp),
# which then compiles into each program that links `target`.
function(vit_use_stb target impl)
  target_include_directories(${target} SYSTEM INTERFACE ${VIT_STB_INCLUDE_DIR})
  if(VIT_USE_SYSTEM_STB AND VIT_STB_LIBRARY)
    target_link_libraries(${target} INTERFACE ${VIT_STB_LIBRARY})
  else()
    target_sources(${target} INTERFACE ${impl})
  endif()
endfunction()
