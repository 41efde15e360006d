# Install rules beyond the programs (component "meterd", what the .deb
# carries; docs/install.md): the example config, the systemd unit, the man
# pages and the bash completion. Included from firmware/CMakeLists.txt.
#
# The config directory and the paths inside the unit are chosen at install
# time from the prefix of that install, not at configure time: `cpack -G DEB`
# installs with the prefix /usr (config in /etc/meterd, unit ExecStart
# /usr/bin/meterd) from a build configured for /usr/local, and
# `cmake --install build --prefix /opt/meterd` gets /etc/opt/meterd. The rule
# is GNUInstallDirs' for SYSCONFDIR.

set(METERD_SYSTEMD_UNITDIR "lib/systemd/system" CACHE STRING
    "Where the systemd unit goes: relative to the install prefix, or absolute")

# Man pages, gzipped as Debian wants them (-n: no name or time stamp inside,
# so the package is reproducible).
find_program(METERD_GZIP gzip REQUIRED)
set(_meterd_man_outputs)
foreach(page meterd.8 meterctl.1)
  set(_out ${CMAKE_CURRENT_BINARY_DIR}/man/${page}.gz)
  add_custom_command(
    OUTPUT ${_out}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_CURRENT_BINARY_DIR}/man
    COMMAND ${METERD_GZIP} -9n -c ${CMAKE_CURRENT_SOURCE_DIR}/man/${page} > ${_out}
    DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/man/${page}
    COMMENT "gzip ${page}")
  list(APPEND _meterd_man_outputs ${_out})
  string(REGEX REPLACE "^.*\\.([0-9])$" "\\1" _section ${page})
  install(FILES ${_out} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${_section} COMPONENT meterd)
endforeach()
# Built by `all`; a build of named targets for a package adds this one
# (toolchains/package.sh).
add_custom_target(meterd_package_files ALL DEPENDS ${_meterd_man_outputs})

install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/meterctl/meterctl.bash
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions
        RENAME meterctl COMPONENT meterd)
# The example stays readable next to the docs even after /etc/meterd/meterd.toml is edited.
install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/meterd/meterd.toml
        DESTINATION ${CMAKE_INSTALL_DOCDIR} RENAME meterd.toml.example COMPONENT meterd)

install(CODE "
  set(METERD_CONFIG_SOURCE \"${CMAKE_CURRENT_SOURCE_DIR}/meterd/meterd.toml\")
  set(METERD_UNIT_SOURCE \"${CMAKE_CURRENT_SOURCE_DIR}/meterd/meterd.service\")
  set(METERD_UNIT_STAGING \"${CMAKE_CURRENT_BINARY_DIR}/install-meterd.service\")
  set(METERD_SYSCONFDIR \"${CMAKE_INSTALL_SYSCONFDIR}\")
  set(METERD_BINDIR \"${CMAKE_INSTALL_BINDIR}\")
  set(METERD_SYSTEMD_UNITDIR \"${METERD_SYSTEMD_UNITDIR}\")
  include(\"${CMAKE_CURRENT_SOURCE_DIR}/install_files.cmake\")
" COMPONENT meterd)
