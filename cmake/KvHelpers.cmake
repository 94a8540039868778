include(GoogleTest)

# kv_add_tests(LIBS <libs...> SOURCES <a_test.cc> ...)
# Makes one gtest binary per *_test.cc, named after the file, linked with the
# given libraries and gmock/gtest_main, and registers its tests with CTest.
# Binaries not labelled "integration" (unit tests and simulators) are also
# listed in the global property KV_UNIT_TESTS, which the target kv_unit_tests
# builds (the sanitizer build builds only these).
function(kv_add_tests)
  cmake_parse_arguments(ARG "" "" "LIBS;SOURCES;LABELS" ${ARGN})
  foreach(src ${ARG_SOURCES})
    get_filename_component(name ${src} NAME_WE)
    add_executable(${name} ${src})
    if(NOT "integration" IN_LIST ARG_LABELS)
      set_property(GLOBAL APPEND PROPERTY KV_UNIT_TESTS ${name})
    endif()
    target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gmock GTest::gtest_main)
    gtest_discover_tests(${name}
      DISCOVERY_TIMEOUT 60
      PROPERTIES LABELS "${ARG_LABELS}")
  endforeach()
endfunction()
