// Optional parts of gridlm built as shared libraries next to the executable (the CUDA backend,
// libgridlm_cuda.so; the NCCL communicator, libgridlm_nccl.so). Such a part, and the libraries it
// needs (the CUDA runtime, cuBLAS, NCCL), are loaded only when a job asks for it: a CUDA build
// runs CPU jobs on nodes that have none of them and never maps them there (cuBLAS alone is
// ~120 MiB of resident pages once loaded).
#pragma once

#include <string>

namespace gridlm {

// The folder the modules are looked for in: $GRIDLM_MODULE_DIR when set, else the folder of the
// running executable (the build puts the modules, gridlm and the test programs in build/bin/).
std::string module_search_path();

// dlopen()s `file_name` (e.g. "libgridlm_cuda.so") from the first folder of module_search_path()
// that has it, with its symbols local to it. Returns the handle, or nullptr with *why saying why:
// not found (naming the folders searched) or the loader's own message (e.g. "libcublas.so.13:
// cannot open shared object file"). A handle is never closed.
void* load_module(const std::string& file_name, std::string* why);

// The address of `symbol` in a loaded module, nullptr when it has none.
void* module_symbol(void* handle, const char* symbol);

}  // namespace gridlm
