include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(VIT_CMAKE_DIR ${CMAKE_INSTALL_DATADIR}/cmake/vit)

install(DIRECTORY include/vit DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS vit EXPORT vitTargets)
install(EXPORT vitTargets NAMESPACE vit:: DESTINATION ${VIT_CMAKE_DIR})

configure_package_config_file(cmake/vitConfig.cmake.in
  ${PROJECT_BINARY_DIR}/vitConfig.cmake INSTALL_DESTINATION ${VIT_CMAKE_DIR})
# The library is header-only, so one package serves any architecture.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/vitConfigVersion.cmake
  COMPATIBILITY SameMajorVersion ARCH_INDEPENDENT)
install(FILES
  ${PROJECT_BINARY_DIR}/vitConfig.cmake
  ${PROJECT_BINARY_DIR}/vitConfigVersion.cmake
  cmake/vitDependencies.cmake
  DESTINATION ${VIT_CMAKE_DIR})
