// Lets one geometry/interpolation routine serve both the CPU and the CUDA kernels.
#pragma once

#if defined(__CUDACC__)
#define D2_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define D2_HOST_DEVICE inline
#endif

// No-alias promise for pointer parameters: lets the compiler keep loads of later loop
// iterations in flight across stores (the gather loops are latency bound otherwise).
#if defined(_MSC_VER) && !defined(__CUDACC__)
#define D2_RESTRICT __restrict
#else
#define D2_RESTRICT __restrict__
#endif
