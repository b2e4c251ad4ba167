// NCCL version query; NCCL is linked only when the CUDA toolkit was found at configure time.
#include "parallel/nccl_info.h"

#ifdef GRIDLM_HAVE_NCCL
#include <nccl.h>
#endif

namespace gridlm {

int nccl_version() {
#ifdef GRIDLM_HAVE_NCCL
    int v = 0;
    if (ncclGetVersion(&v) == ncclSuccess) return v;
#endif
    return 0;
}

}  // namespace gridlm
