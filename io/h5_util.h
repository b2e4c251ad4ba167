// Thin RAII and error-checking layer over the HDF5 C API, shared by the checkpoint reader and
// writer (and by tests that craft malformed files). Includes hdf5.h: keep it out of public headers.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/error.h"

namespace gridlm::h5 {

// A failed HDF5 call. Callers that know which file they work on catch it and rethrow a plain
// gridlm::Error prefixed with the file name.
class CallError : public Error {
public:
    using Error::Error;
};

// Throws CallError for a failed HDF5 call: the expression, source file and line, rank and host,
// and the outermost and innermost messages of HDF5's error stack (then clears the stack).
[[noreturn]] void fail(const char* expr, const char* file, int line);

// Every HDF5 call reports failure with a negative return (hid_t, herr_t, htri_t, hssize_t).
template <typename T>
inline T check(T value, const char* expr, const char* file, int line) {
    if (value < 0) fail(expr, file, line);
    return value;
}

// Owns one HDF5 identifier of any kind (file, group, dataset, dataspace, type, plist, attribute)
// and drops its reference on destruction. Files are closed explicitly with close_file() where a
// failed close must be reported (the writer), since destructors cannot throw.
class Handle {
public:
    Handle() = default;
    explicit Handle(hid_t id) : id_(id) {}
    ~Handle() { reset(); }
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    Handle(Handle&& o) noexcept : id_(o.id_) { o.id_ = H5I_INVALID_HID; }
    Handle& operator=(Handle&& o) noexcept {
        if (this != &o) {
            reset();
            id_ = o.id_;
            o.id_ = H5I_INVALID_HID;
        }
        return *this;
    }
    hid_t get() const { return id_; }
    operator hid_t() const { return id_; }
    void reset() {
        if (id_ >= 0) H5Idec_ref(id_);
        id_ = H5I_INVALID_HID;
    }
    hid_t release() {
        hid_t id = id_;
        id_ = H5I_INVALID_HID;
        return id;
    }

private:
    hid_t id_ = H5I_INVALID_HID;
};

// While alive, HDF5 does not print its error stack to stderr: failures become gridlm::Error
// messages instead (H5_CHECK). Restores the previous handler on destruction.
class ErrorSilencer {
public:
    ErrorSilencer();
    ~ErrorSilencer();
    ErrorSilencer(const ErrorSilencer&) = delete;
    ErrorSilencer& operator=(const ErrorSilencer&) = delete;

private:
    H5E_auto2_t old_func_ = nullptr;
    void* old_data_ = nullptr;
};

// Variable-length UTF-8 string type (what h5dump prints as readable text).
Handle utf8_string_type();
// 2-byte floating-point file types with the bit layout of IEEE half (identical to HDF5 1.14's
// H5T_IEEE_F16LE) and of bfloat16. HDF5 converts them like any float, so h5dump shows values.
Handle f16_file_type();
Handle bf16_file_type();

bool has_attr(hid_t obj, const char* name);
bool has_link(hid_t loc, const std::string& name);

void write_attr_string(hid_t obj, const char* name, const std::string& value);
// An integer attribute stored with the given HDF5 file type (e.g. H5T_STD_I64LE, H5T_STD_I8LE).
void write_attr_int(hid_t obj, const char* name, int64_t value, hid_t file_type);
void write_attr_double(hid_t obj, const char* name, double value);
// A 1-D int64 attribute (H5T_STD_I64LE), e.g. a tensor's logical shape.
void write_attr_int_array(hid_t obj, const char* name, const std::vector<int64_t>& values);

// Readers throw gridlm::Error("<where>: missing attribute 'name'") or a type mismatch message;
// `where` names the file and object, e.g. "checkpoint m.h5, group /config".
std::string read_attr_string(hid_t obj, const char* name, const std::string& where);
int64_t read_attr_int(hid_t obj, const char* name, const std::string& where);
double read_attr_double(hid_t obj, const char* name, const std::string& where);
// A 1-D (or scalar) integer attribute of any integer type, as int64 values.
std::vector<int64_t> read_attr_int_array(hid_t obj, const char* name, const std::string& where);

// 1-D datasets. Strings are variable-length UTF-8; a string must not contain a NUL byte (HDF5
// stores them NUL-terminated), which the writer refuses with a message naming `what`.
void write_string_dataset(hid_t loc, const char* name, const std::vector<std::string>& values, const std::string& what);
void write_int32_dataset(hid_t loc, const char* name, const std::vector<int32_t>& values);
// The readers throw Error naming `where` and the dataset when it holds more than max_n values:
// the length comes from the file and is checked before anything is allocated.
std::vector<std::string> read_string_dataset(hid_t loc, const char* name, const std::string& where, size_t max_n);
std::vector<int32_t> read_int32_dataset(hid_t loc, const char* name, const std::string& where, size_t max_n);

// Dimensions of a dataset's dataspace.
std::vector<int64_t> dataset_shape(hid_t dataset);

}  // namespace gridlm::h5

// Checks an HDF5 call; on failure throws gridlm::h5::CallError naming the expression, file, line, rank, host.
#define H5_CHECK(expr) ::gridlm::h5::check((expr), #expr, __FILE__, __LINE__)
