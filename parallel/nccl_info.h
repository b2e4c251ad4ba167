// The NCCL library this build links (for the GPU backend's collectives), or none.
#pragma once

namespace gridlm {

// NCCL's version code (e.g. 22703 for 2.27.3), from ncclGetVersion, which answers without a GPU;
// 0 when the build has no NCCL (no CUDA toolkit found) or the call fails.
int nccl_version();

}  // namespace gridlm
