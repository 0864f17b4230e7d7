# Cross-build for aarch64 with Debian's g++-aarch64-linux-gnu, arm64 libraries
# from multiarch (dpkg --add-architecture arm64), and runs under qemu-aarch64:
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

# The cross sysroot, then / for the arm64 multiarch libraries
# (/usr/lib/aarch64-linux-gnu) and the architecture-independent header-only
# packages (Eigen, nlohmann_json, Catch2); never the host's x86-64 libraries.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu /)
set(CMAKE_IGNORE_PATH /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)

# LD_LIBRARY_PATH keeps libc.so.6 from the cross sysroot, matching its
# ld-linux-aarch64.so.1: the host's ld.so.cache would otherwise hand the
# loader libc6:arm64's libc.so.6, another build whose private _rtld_global
# layout differs, and pthread_create then loops forever.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /usr/aarch64-linux-gnu -E LD_LIBRARY_PATH=/usr/aarch64-linux-gnu/lib)
