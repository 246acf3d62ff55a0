# Build-time helpers: LibTorch's headers precompiled once and shared, ccache when it is installed.
#
# VITSLIM_PCH (default ON): the target vitslim_pch compiles cmake/precompiled.h (LibTorch, nlohmann
# json, common std headers) with the compile definitions every layer has; vitslim_use_pch(target)
# makes a target reuse that one precompiled header (REUSE_FROM) and compile its LibTorch sources
# in unity batches of VITSLIM_UNITY_BATCH, except for its sources that include no LibTorch header
# (vitslim_no_pch): they compile on their own, as before, so a missing include there still fails. GCC checks that the precompiled header fits each compile (-Winvalid-pch warns when
# it does not, and the header is then parsed as text: slower, never wrong).
#
# VITSLIM_CCACHE (default ON): compiles go through ccache when it is on PATH (scripts/setup.sh
# installs it), with the settings that let it cache compiles that use a precompiled header and
# paths relative to the source tree, so another checkout of the same commit hits the same cache.
option(VITSLIM_PCH "Precompile the LibTorch headers once and reuse them in every target" ON)
set(VITSLIM_UNITY_BATCH 4 CACHE STRING "LibTorch sources compiled together per unity file (0: no unity build)")
option(VITSLIM_CCACHE "Compile through ccache when it is installed" ON)

find_program(VITSLIM_CCACHE_PROGRAM ccache)
if(VITSLIM_CCACHE AND VITSLIM_CCACHE_PROGRAM)
  set(_ccache_env CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
                  CCACHE_BASEDIR=${PROJECT_SOURCE_DIR} CCACHE_NOHASHDIR=1)
  set(CMAKE_C_COMPILER_LAUNCHER ${CMAKE_COMMAND} -E env ${_ccache_env} ${VITSLIM_CCACHE_PROGRAM})
  set(CMAKE_CXX_COMPILER_LAUNCHER ${CMAKE_COMMAND} -E env ${_ccache_env} ${VITSLIM_CCACHE_PROGRAM})
  vitslim_status(ccache "${VITSLIM_CCACHE_PROGRAM}")
else()
  vitslim_status(ccache "off (VITSLIM_CCACHE=${VITSLIM_CCACHE}, program: ${VITSLIM_CCACHE_PROGRAM})")
endif()

# The compile definitions of every vitslim target (the precompiled header must see the same ones).
set(VITSLIM_COMMON_DEFINITIONS VITSLIM_VERSION="${PROJECT_VERSION}" OMPI_SKIP_MPICXX=1 MPICH_SKIP_MPICXX=1
                               ${HDF5_C_DEFINITIONS})

if(VITSLIM_PCH)
  add_library(vitslim_pch OBJECT ${PROJECT_SOURCE_DIR}/cmake/precompiled.cpp)
  # The same definitions and options as every user: GCC refuses a precompiled header built with
  # others (-Wpedantic, for one, changes the predefined macros).
  target_compile_definitions(vitslim_pch PRIVATE ${VITSLIM_COMMON_DEFINITIONS})
  target_compile_options(vitslim_pch PRIVATE ${VITSLIM_WARNINGS})
  target_include_directories(vitslim_pch SYSTEM PRIVATE ${TORCH_INCLUDE_DIRS})
  # LibTorch's usage requirements (its compile definitions) without a build dependency.
  target_link_libraries(vitslim_pch PRIVATE ${TORCH_LIBRARIES} nlohmann_json::nlohmann_json)
  target_precompile_headers(vitslim_pch PRIVATE ${PROJECT_SOURCE_DIR}/cmake/precompiled.h)
  vitslim_status(PCH "cmake/precompiled.h, shared by every LibTorch target")
else()
  vitslim_status(PCH "off (VITSLIM_PCH=OFF)")
endif()

# The sources named in ARGN include no LibTorch header: they skip the precompiled one, and are
# compiled on their own (they are cheap).
function(vitslim_no_pch)
  set_source_files_properties(${ARGN} PROPERTIES SKIP_PRECOMPILE_HEADERS ON SKIP_UNITY_BUILD_INCLUSION ON)
endfunction()

# `target` compiles LibTorch code: it reuses the precompiled header, and its LibTorch sources are
# compiled VITSLIM_UNITY_BATCH at a time (a unity build: each pays the precompiled header's loading,
# ~4 s, once per batch instead of once per file).
function(vitslim_use_pch target)
  if(VITSLIM_PCH)
    target_precompile_headers(${target} REUSE_FROM vitslim_pch)
  endif()
  if(VITSLIM_UNITY_BATCH GREATER 0)
    set_target_properties(${target} PROPERTIES UNITY_BUILD ON UNITY_BUILD_MODE BATCH
                                               UNITY_BUILD_BATCH_SIZE ${VITSLIM_UNITY_BATCH})
  endif()
endfunction()
