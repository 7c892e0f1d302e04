#pragma once
/// Tensors in the safetensors format (https://github.com/huggingface/safetensors), the layout
/// Python's `safetensors.torch.load_file` reads:
///
///   8 bytes   N, little-endian u64
///   N bytes   UTF-8 JSON header, padded with spaces to a multiple of 8:
///             {"__metadata__": {"format": "pt", ...},
///              "NAME": {"dtype": "F32", "shape": [2, 3], "data_offsets": [BEGIN, END]}, ...}
///   rest      byte buffer; each tensor row-major, little-endian, at [BEGIN, END) of the buffer
///
/// Supported dtypes: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL. The writer orders tensors as the
/// reference implementation does (by decreasing dtype alignment, then by name), so data stays
/// aligned and the bytes match what Python's safetensors writes for the same tensors and metadata.

#include <ATen/core/Tensor.h>

#include <map>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace torch::nn {
class Module;
}

namespace longseq {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

/// Writes `tensors` in safetensors layout to `os`. Tensors may live on any device, be
/// non-contiguous or require grad; their values are stored. `metadata` goes to `__metadata__`
/// together with {"format": "pt"} (a caller's `format` must be "pt"). Throws a c10::Error on
/// duplicate or reserved names, undefined tensors and unsupported dtypes.
void write_safetensors(std::ostream& os, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata = {});

/// write_safetensors() to `path` through write_file_atomic(): a crash mid-save leaves the previous
/// file intact.
void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {});

/// Reads a safetensors file into CPU tensors (in data-offset order, which is the order the writer
/// chose). Fills `metadata` with `__metadata__` when given. Every field is validated first; a
/// malformed, truncated or unsupported file is refused with a c10::Error naming the file and the
/// problem (never a crash or an out-of-bounds read).
NamedTensors load_safetensors(const std::string& path,
                              std::map<std::string, std::string>* metadata = nullptr);

/// Saves `module`'s named_parameters() and named_buffers() (recursive, dotted names as LibTorch
/// gives them, e.g. "wq.weight").
void save_module_safetensors(const torch::nn::Module& module, const std::string& path,
                             const std::map<std::string, std::string>& metadata = {});

/// Loads a file written by save_module_safetensors() into `module`'s parameters and buffers
/// (copied in place, keeping their device). Refuses, before changing anything, files with missing
/// or unexpected names or a shape or dtype that differs from the module's; the message lists them.
void load_module_safetensors(torch::nn::Module& module, const std::string& path,
                             std::map<std::string, std::string>* metadata = nullptr);

/// load_module_safetensors() for tensors already read (e.g. checked further by the caller first):
/// all-or-nothing, and `source` names them in the error.
void load_module_tensors(torch::nn::Module& module, const NamedTensors& tensors,
                         const std::string& source);

}  // namespace longseq
