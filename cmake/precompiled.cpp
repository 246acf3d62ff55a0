// The translation unit of the vitslim_pch target, which compiles cmake/precompiled.h once for the
// targets that reuse it (cmake/precompiled.cmake). It defines nothing.
