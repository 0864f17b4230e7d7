include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(VIT_CMAKE_DIR ${CMAKE_INSTALL_DATADIR}/cmake/vit)

install(DIRECTORY include/vit DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS vit_core vit vit_text EXPORT vitTargets)
install(EXPORT vitTargets NAMESPACE vit:: DESTINATION ${VIT_CMAKE_DIR})

# find_dependency() lines for vitConfig.cmake, from the list the build tree used.
set(VIT_FIND_DEPENDENCIES "")
foreach(_vit_dep IN LISTS VIT_PACKAGE_DEPENDENCIES)
  string(APPEND VIT_FIND_DEPENDENCIES "find_dependency(${_vit_dep})\n")
endforeach()
if(VIT_USES_LIBJPEG)
  string(APPEND VIT_FIND_DEPENDENCIES "find_dependency(JPEG)\n")
endif()
configure_package_config_file(cmake/vitConfig.cmake.in
  ${PROJECT_BINARY_DIR}/vitConfig.cmake INSTALL_DESTINATION ${VIT_CMAKE_DIR})
# Headers, CMake files and stb's .cpp: one package serves any architecture.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/vitConfigVersion.cmake
  COMPATIBILITY SameMajorVersion ARCH_INDEPENDENT)
install(FILES
  ${PROJECT_BINARY_DIR}/vitConfig.cmake
  ${PROJECT_BINARY_DIR}/vitConfigVersion.cmake
  cmake/vitDependencies.cmake
  cmake/vitText.cmake
  src/vit_stb.cpp
  DESTINATION ${VIT_CMAKE_DIR})
