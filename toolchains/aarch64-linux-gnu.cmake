# CMake toolchain file: 64-bit ARM Linux (Debian arm64), Debian multiarch.
# System, compilers, sysroot and find-root modes only (toolchains/cross-build.sh installs
# the compiler and the :arm64 -dev packages; docs/cross-build.md explains why).
#   cmake -S . -B build-aarch64 -G Ninja -DCMAKE_TOOLCHAIN_FILE=toolchains/aarch64-linux-gnu.cmake \
#     -DPKG_CONFIG_EXECUTABLE=/usr/bin/aarch64-linux-gnu-pkg-config
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
# pkg-config is not set here: the target's one (/usr/bin/aarch64-linux-gnu-pkg-config,
# package pkgconf:arm64) is passed as -DPKG_CONFIG_EXECUTABLE by cross-build.sh.

# No CMAKE_SYSROOT: with multiarch the target's libraries live in the host root
# (/usr/lib/aarch64-linux-gnu, headers in /usr/include, CMake configs in
# /usr/lib/aarch64-linux-gnu/cmake and /usr/share/cmake); the cross gcc already
# searches there, and CMake picks the lib/aarch64-linux-gnu subdirectories through
# CMAKE_LIBRARY_ARCHITECTURE, which it detects from the compiler. /usr/aarch64-linux-gnu
# holds the cross libc (and is the qemu -L prefix).
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)  # build tools run on the host
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)   # ONLY would hide /usr/lib/aarch64-linux-gnu
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
