// Error reporting, string/attribute helpers and custom float types over the HDF5 C API.
#include "io/h5_util.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace gridlm::h5 {

namespace {

// The launcher's rank, read from the environment so that io/ needs no MPI call to label messages.
std::string rank_label() {
    for (const char* var : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"}) {
        if (const char* v = std::getenv(var); v && *v) return str("rank ", v);
    }
    return "rank 0";
}

std::string host_name() {
    char buf[256] = {};
    if (gethostname(buf, sizeof buf - 1) != 0) return "?";
    return buf;
}

herr_t collect_error(unsigned, const H5E_error2_t* err, void* data) {
    auto* out = static_cast<std::vector<std::string>*>(data);
    if (err && err->desc && *err->desc) out->push_back(str(err->func_name ? err->func_name : "?", ": ", err->desc));
    return 0;
}

}  // namespace

void fail(const char* expr, const char* file, int line) {
    std::vector<std::string> stack;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect_error, &stack);
    H5Eclear2(H5E_DEFAULT);
    std::string detail;
    // The outermost entries name the API call, the innermost the actual cause: keep both ends.
    for (size_t i = 0; i < stack.size(); ++i) {
        if (stack.size() > 4 && i == 2) {
            detail += " ...";
            i = stack.size() - 2;
        }
        detail += (detail.empty() ? "" : "; ") + stack[i];
    }
    if (detail.empty()) detail = "no HDF5 error detail";
    throw CallError(str("HDF5 call `", expr, "` failed at ", file, ":", line, " (", rank_label(), " on ", host_name(),
                        "): ", detail));
}

ErrorSilencer::ErrorSilencer() {
    H5Eget_auto2(H5E_DEFAULT, &old_func_, &old_data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

ErrorSilencer::~ErrorSilencer() { H5Eset_auto2(H5E_DEFAULT, old_func_, old_data_); }

Handle utf8_string_type() {
    Handle t(H5_CHECK(H5Tcopy(H5T_C_S1)));
    H5_CHECK(H5Tset_size(t, H5T_VARIABLE));
    H5_CHECK(H5Tset_cset(t, H5T_CSET_UTF8));
    return t;
}

static Handle float16_type(size_t epos, size_t esize, size_t msize, size_t ebias) {
    Handle t(H5_CHECK(H5Tcopy(H5T_IEEE_F32LE)));
    // Shrink the fields before the size: HDF5 refuses a size smaller than the current precision.
    H5_CHECK(H5Tset_fields(t, 15, epos, esize, 0, msize));
    H5_CHECK(H5Tset_precision(t, 16));
    H5_CHECK(H5Tset_offset(t, 0));
    H5_CHECK(H5Tset_size(t, 2));
    H5_CHECK(H5Tset_ebias(t, ebias));
    return t;
}

Handle f16_file_type() { return float16_type(10, 5, 10, 15); }
Handle bf16_file_type() { return float16_type(7, 8, 7, 127); }

bool has_attr(hid_t obj, const char* name) { return H5_CHECK(H5Aexists(obj, name)) > 0; }

bool has_link(hid_t loc, const std::string& name) { return H5_CHECK(H5Lexists(loc, name.c_str(), H5P_DEFAULT)) > 0; }

void write_attr_string(hid_t obj, const char* name, const std::string& value) {
    if (value.find('\0') != std::string::npos) {
        throw Error(str("attribute '", name, "' contains a NUL byte, which HDF5 strings cannot hold"));
    }
    Handle type = utf8_string_type();
    Handle space(H5_CHECK(H5Screate(H5S_SCALAR)));
    Handle attr(H5_CHECK(H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT)));
    const char* p = value.c_str();
    H5_CHECK(H5Awrite(attr, type, &p));
}

void write_attr_int(hid_t obj, const char* name, int64_t value, hid_t file_type) {
    Handle space(H5_CHECK(H5Screate(H5S_SCALAR)));
    Handle attr(H5_CHECK(H5Acreate2(obj, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT)));
    H5_CHECK(H5Awrite(attr, H5T_NATIVE_INT64, &value));
}

void write_attr_double(hid_t obj, const char* name, double value) {
    Handle space(H5_CHECK(H5Screate(H5S_SCALAR)));
    Handle attr(H5_CHECK(H5Acreate2(obj, name, H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT)));
    H5_CHECK(H5Awrite(attr, H5T_NATIVE_DOUBLE, &value));
}

void write_attr_int_array(hid_t obj, const char* name, const std::vector<int64_t>& values) {
    const hsize_t dims[1] = {values.size()};
    Handle space(H5_CHECK(H5Screate_simple(1, dims, nullptr)));
    Handle attr(H5_CHECK(H5Acreate2(obj, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT)));
    if (!values.empty()) H5_CHECK(H5Awrite(attr, H5T_NATIVE_INT64, values.data()));
}

// Opens an attribute and checks it is a single value of the wanted class.
static Handle open_scalar_attr(hid_t obj, const char* name, const std::string& where, const char* want,
                               bool (*class_ok)(H5T_class_t)) {
    if (!has_attr(obj, name)) throw Error(str(where, ": missing attribute '", name, "'"));
    Handle attr(H5_CHECK(H5Aopen(obj, name, H5P_DEFAULT)));
    Handle type(H5_CHECK(H5Aget_type(attr)));
    Handle space(H5_CHECK(H5Aget_space(attr)));
    if (!class_ok(H5_CHECK(H5Tget_class(type))) || H5_CHECK(H5Sget_simple_extent_npoints(space)) != 1) {
        throw Error(str(where, ": attribute '", name, "' should be a single ", want));
    }
    return attr;
}

std::string read_attr_string(hid_t obj, const char* name, const std::string& where) {
    Handle attr = open_scalar_attr(obj, name, where, "string", [](H5T_class_t c) { return c == H5T_STRING; });
    Handle type(H5_CHECK(H5Aget_type(attr)));
    if (H5_CHECK(H5Tis_variable_str(type)) > 0) {
        Handle mem(H5_CHECK(H5Tcopy(type)));
        char* p = nullptr;
        H5_CHECK(H5Aread(attr, mem, &p));
        std::string out = p ? p : "";
        H5free_memory(p);
        return out;
    }
    // Fixed-length string written by another tool: strip the padding.
    const size_t n = H5Tget_size(type);
    std::string buf(n, '\0');
    H5_CHECK(H5Aread(attr, type, buf.data()));
    buf.resize(std::strlen(buf.c_str()));
    return buf;
}

int64_t read_attr_int(hid_t obj, const char* name, const std::string& where) {
    Handle attr = open_scalar_attr(obj, name, where, "integer", [](H5T_class_t c) { return c == H5T_INTEGER; });
    int64_t v = 0;
    H5_CHECK(H5Aread(attr, H5T_NATIVE_INT64, &v));
    return v;
}

double read_attr_double(hid_t obj, const char* name, const std::string& where) {
    Handle attr =
        open_scalar_attr(obj, name, where, "number", [](H5T_class_t c) { return c == H5T_FLOAT || c == H5T_INTEGER; });
    double v = 0;
    H5_CHECK(H5Aread(attr, H5T_NATIVE_DOUBLE, &v));
    return v;
}

std::vector<int64_t> read_attr_int_array(hid_t obj, const char* name, const std::string& where) {
    if (!has_attr(obj, name)) throw Error(str(where, ": missing attribute '", name, "'"));
    Handle attr(H5_CHECK(H5Aopen(obj, name, H5P_DEFAULT)));
    Handle type(H5_CHECK(H5Aget_type(attr)));
    Handle space(H5_CHECK(H5Aget_space(attr)));
    if (H5_CHECK(H5Tget_class(type)) != H5T_INTEGER || H5_CHECK(H5Sget_simple_extent_ndims(space)) > 1) {
        throw Error(str(where, ": attribute '", name, "' should be a 1-D array of integers"));
    }
    std::vector<int64_t> v((size_t)H5_CHECK(H5Sget_simple_extent_npoints(space)));
    if (!v.empty()) H5_CHECK(H5Aread(attr, H5T_NATIVE_INT64, v.data()));
    return v;
}

void write_string_dataset(hid_t loc, const char* name, const std::vector<std::string>& values,
                          const std::string& what) {
    std::vector<const char*> ptrs(values.size());
    for (size_t i = 0; i < values.size(); ++i) {
        if (values[i].find('\0') != std::string::npos) {
            throw Error(str(what, " ", i, " contains a NUL byte, which an HDF5 string cannot hold"));
        }
        ptrs[i] = values[i].c_str();
    }
    Handle type = utf8_string_type();
    const hsize_t dims[1] = {values.size()};
    Handle space(H5_CHECK(H5Screate_simple(1, dims, nullptr)));
    Handle dset(H5_CHECK(H5Dcreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)));
    if (!values.empty()) H5_CHECK(H5Dwrite(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()));
}

void write_int32_dataset(hid_t loc, const char* name, const std::vector<int32_t>& values) {
    const hsize_t dims[1] = {values.size()};
    Handle space(H5_CHECK(H5Screate_simple(1, dims, nullptr)));
    Handle dset(H5_CHECK(H5Dcreate2(loc, name, H5T_STD_I32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)));
    if (!values.empty()) H5_CHECK(H5Dwrite(dset, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()));
}

std::vector<int64_t> dataset_shape(hid_t dataset) {
    Handle space(H5_CHECK(H5Dget_space(dataset)));
    const int rank = H5_CHECK(H5Sget_simple_extent_ndims(space));
    std::vector<hsize_t> dims(rank);
    H5_CHECK(H5Sget_simple_extent_dims(space, dims.data(), nullptr));
    return std::vector<int64_t>(dims.begin(), dims.end());
}

// Opens a 1-D dataset of the wanted class, or explains what is missing or wrong.
static Handle open_vector(hid_t loc, const char* name, const std::string& where, H5T_class_t want,
                          const char* want_name, size_t max_n, size_t* n) {
    if (!has_link(loc, name)) throw Error(str(where, ": missing dataset '", name, "'"));
    Handle dset(H5_CHECK(H5Dopen2(loc, name, H5P_DEFAULT)));
    Handle type(H5_CHECK(H5Dget_type(dset)));
    const std::vector<int64_t> shape = dataset_shape(dset);
    if (H5_CHECK(H5Tget_class(type)) != want || shape.size() != 1) {
        throw Error(str(where, ": dataset '", name, "' should be a 1-D array of ", want_name));
    }
    *n = (size_t)shape[0];
    if (*n > max_n) {
        throw Error(str(where, ": dataset '", name, "' holds ", *n, " values, more than the ", max_n, " it may have"));
    }
    return dset;
}

std::vector<std::string> read_string_dataset(hid_t loc, const char* name, const std::string& where, size_t max_n) {
    size_t n = 0;
    Handle dset = open_vector(loc, name, where, H5T_STRING, "strings", max_n, &n);
    Handle type(H5_CHECK(H5Dget_type(dset)));
    Handle mem(H5_CHECK(H5Tcopy(type)));
    std::vector<std::string> out(n);
    if (n == 0) return out;
    if (H5_CHECK(H5Tis_variable_str(type)) > 0) {
        std::vector<char*> ptrs(n, nullptr);
        H5_CHECK(H5Dread(dset, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()));
        for (size_t i = 0; i < n; ++i) out[i] = ptrs[i] ? ptrs[i] : "";
        Handle space(H5_CHECK(H5Dget_space(dset)));
        H5_CHECK(H5Dvlen_reclaim(mem, space, H5P_DEFAULT, ptrs.data()));
        return out;
    }
    const size_t width = H5Tget_size(type);
    std::vector<char> buf(n * width);
    H5_CHECK(H5Dread(dset, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()));
    for (size_t i = 0; i < n; ++i) {
        const char* s = buf.data() + i * width;
        out[i].assign(s, strnlen(s, width));
    }
    return out;
}

std::vector<int32_t> read_int32_dataset(hid_t loc, const char* name, const std::string& where, size_t max_n) {
    size_t n = 0;
    Handle dset = open_vector(loc, name, where, H5T_INTEGER, "integers", max_n, &n);
    std::vector<int32_t> out(n);
    if (n) H5_CHECK(H5Dread(dset, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()));
    return out;
}

}  // namespace gridlm::h5
