// MAAS_HOST_DEVICE marks code written once for the CPU kernels and the CUDA backend alike: host and
// device functions where nvcc compiles the header, plain functions everywhere else.
#pragma once

#ifdef __CUDACC__
#define MAAS_HOST_DEVICE __host__ __device__
#else
#define MAAS_HOST_DEVICE
#endif
