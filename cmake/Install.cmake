# `cmake --install` rules and the Debian package (CPack; scripts/package.sh).
#   bin/kvd, bin/kvctl
#   share/kvstore/proto/*.proto        the gRPC API, for other clients
#   share/kvstore/kvd.conf.example     an example config file
#   lib/systemd/system/kvd.service     the systemd unit
#   share/doc/kvstore/README.md
# The package's postinst adds the system user kvstore, /var/lib/kvstore and
# /etc/kvstore/kvd.conf (from the example, on the first install only).
include(GNUInstallDirs)
# `install` and cpack build only what they install (kvd, kvctl), not all the
# tests and benchmarks.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)
install(TARGETS kvd kvctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES proto/kv.proto proto/peer.proto proto/health.proto
        DESTINATION ${CMAKE_INSTALL_DATADIR}/kvstore/proto)
install(FILES packaging/kvd.conf DESTINATION ${CMAKE_INSTALL_DATADIR}/kvstore
        RENAME kvd.conf.example)
install(FILES packaging/kvd.service DESTINATION lib/systemd/system)
install(FILES README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME kvstore)
set(CPACK_PACKAGE_VENDOR "kvstore")
set(CPACK_PACKAGE_CONTACT "kvstore maintainers <kvstore@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "eventually consistent replicated key-value store (kvd server, kvctl client)")
# KV_PACKAGE_VERSION: set by scripts/package.sh (0.1.0+git<sha>).
set(KV_PACKAGE_VERSION "0.1.0" CACHE STRING "Version of the Debian package")
set(CPACK_PACKAGE_VERSION ${KV_PACKAGE_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION database)
# Depends: from the libraries the binaries link (dpkg-shlibdeps).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/packaging/postinst ${PROJECT_SOURCE_DIR}/packaging/prerm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
