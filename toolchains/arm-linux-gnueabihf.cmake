# CMake toolchain file: 32-bit ARM hard-float Linux (Debian armhf), Debian multiarch.
# System, compilers, sysroot and find-root modes only (toolchains/cross-build.sh installs
# the compiler and the :armhf -dev packages; docs/cross-build.md explains why).
#   cmake -S . -B build-armhf -G Ninja -DCMAKE_TOOLCHAIN_FILE=toolchains/arm-linux-gnueabihf.cmake \
#     -DPKG_CONFIG_EXECUTABLE=/usr/bin/arm-linux-gnueabihf-pkg-config
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR arm)

set(CMAKE_C_COMPILER arm-linux-gnueabihf-gcc)
set(CMAKE_CXX_COMPILER arm-linux-gnueabihf-g++)
# pkg-config is not set here: the target's one (/usr/bin/arm-linux-gnueabihf-pkg-config,
# package pkgconf:armhf) is passed as -DPKG_CONFIG_EXECUTABLE by cross-build.sh.

# No CMAKE_SYSROOT: with multiarch the target's libraries live in the host root
# (/usr/lib/arm-linux-gnueabihf, headers in /usr/include, CMake configs in
# /usr/lib/arm-linux-gnueabihf/cmake and /usr/share/cmake); the cross gcc already
# searches there, and CMake picks the lib/arm-linux-gnueabihf subdirectories through
# CMAKE_LIBRARY_ARCHITECTURE, which it detects from the compiler. /usr/arm-linux-gnueabihf
# holds the cross libc (and is the qemu -L prefix).
set(CMAKE_FIND_ROOT_PATH /usr/arm-linux-gnueabihf)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)  # build tools run on the host
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)   # ONLY would hide /usr/lib/arm-linux-gnueabihf
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
