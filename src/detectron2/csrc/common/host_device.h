// Lets one geometry/interpolation routine serve both the CPU and the CUDA kernels.
#pragma once

#if defined(__CUDACC__)
#define D2_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define D2_HOST_DEVICE inline
#endif
