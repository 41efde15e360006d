# Runs at install time (install(CODE) in firmware/install.cmake), where
# CMAKE_INSTALL_PREFIX is the prefix of this install and DESTDIR, if set, the
# staging root (file(INSTALL) prepends it to absolute destinations).

set(_prefix "${CMAKE_INSTALL_PREFIX}")
# GNUInstallDirs' rule for CMAKE_INSTALL_FULL_SYSCONFDIR, applied to this prefix.
if(IS_ABSOLUTE "${METERD_SYSCONFDIR}")
  set(_etc "${METERD_SYSCONFDIR}")
elseif(_prefix STREQUAL "/" OR _prefix STREQUAL "/usr")
  set(_etc "/etc")
elseif(_prefix MATCHES "^/opt/")
  set(_etc "/etc${_prefix}")
else()
  set(_etc "${_prefix}/${METERD_SYSCONFDIR}")
endif()
if(IS_ABSOLUTE "${METERD_BINDIR}")
  set(_bin "${METERD_BINDIR}")
else()
  set(_bin "${_prefix}/${METERD_BINDIR}")
endif()
if(IS_ABSOLUTE "${METERD_SYSTEMD_UNITDIR}")
  set(_unitdir "${METERD_SYSTEMD_UNITDIR}")
else()
  set(_unitdir "${_prefix}/${METERD_SYSTEMD_UNITDIR}")
endif()

# The example config, unless a config is already there and differs: an
# install over a running gateway never overwrites its settings (the .deb's
# conffile handling does the same for packages).
set(_conf "$ENV{DESTDIR}${_etc}/meterd/meterd.toml")
set(_keep FALSE)
if(EXISTS "${_conf}")
  file(SHA256 "${_conf}" _have)
  file(SHA256 "${METERD_CONFIG_SOURCE}" _new)
  if(NOT _have STREQUAL _new)
    set(_keep TRUE)
  endif()
endif()
if(_keep)
  message(STATUS "Keeping: ${_conf} (edited; the example is in the doc directory as meterd.toml.example)")
else()
  file(INSTALL DESTINATION "${_etc}/meterd" TYPE FILE
       PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
       FILES "${METERD_CONFIG_SOURCE}")
endif()

# The unit names the program and the config by absolute path: rewrite the
# packaged paths (/usr/bin, /etc) to this install's.
file(READ "${METERD_UNIT_SOURCE}" _unit)
string(REPLACE "/usr/bin/meterd " "${_bin}/meterd " _unit "${_unit}")
string(REPLACE "/etc/meterd/meterd.toml" "${_etc}/meterd/meterd.toml" _unit "${_unit}")
file(WRITE "${METERD_UNIT_STAGING}" "${_unit}")
file(INSTALL DESTINATION "${_unitdir}" TYPE FILE
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
     RENAME meterd.service FILES "${METERD_UNIT_STAGING}")
