# Writes OUT: a header defining KV_BUILD_VERSION as the short git commit of
# SRC (with "-dirty" when the tree has changes), or "dev" without git, and
# KV_BUILD_TYPE as BUILD_TYPE (CMAKE_BUILD_TYPE; "unknown" when empty). Run at
# every build (see server/CMakeLists.txt); the file is rewritten only when
# the version changes, so nothing recompiles needlessly.
set(version "dev")
find_package(Git QUIET)
if(GIT_FOUND)
  execute_process(COMMAND ${GIT_EXECUTABLE} -C ${SRC} rev-parse --short=12 HEAD
                  OUTPUT_VARIABLE sha OUTPUT_STRIP_TRAILING_WHITESPACE
                  RESULT_VARIABLE rc ERROR_QUIET)
  if(rc EQUAL 0 AND sha)
    set(version "${sha}")
    execute_process(COMMAND ${GIT_EXECUTABLE} -C ${SRC} diff --quiet HEAD --
                    RESULT_VARIABLE dirty ERROR_QUIET)
    if(NOT dirty EQUAL 0)
      set(version "${version}-dirty")
    endif()
  endif()
endif()
if(NOT BUILD_TYPE)
  set(BUILD_TYPE "unknown")
endif()
set(content "#define KV_BUILD_VERSION \"${version}\"\n#define KV_BUILD_TYPE \"${BUILD_TYPE}\"\n")
if(EXISTS ${OUT})
  file(READ ${OUT} old)
endif()
if(NOT "${old}" STREQUAL "${content}")
  file(WRITE ${OUT} "${content}")
endif()
