#pragma once
// Reading untrusted JSON and files: every JSON document longseq reads (configs, a checkpoint's
// state.json, the safetensors header) goes through parse_json_strict, and every file it reads as a
// file through read_regular_file / check_regular_file.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace longseq {

struct JsonLimits {
  int max_depth = 64;             ///< nesting of arrays and objects
  int64_t max_array = -1;         ///< elements per array; -1 = no limit
  int64_t max_values = 10000000;  ///< values in the whole document
};

/// Parses `text` in one linear pass (a SAX handler builds the document): refuses nesting deeper
/// than limits.max_depth, arrays longer than limits.max_array, more than limits.max_values values
/// and duplicate keys in an object (nlohmann would keep the last one silently), before building
/// what exceeds them. Errors are c10::Errors that start with `where` and name the offending key
/// or position.
nlohmann::json parse_json_strict(const std::string& text, const std::string& where,
                                 const JsonLimits& limits = {});

/// Throws, naming `what` and `path`, unless `path` is a regular file (not a directory, FIFO,
/// socket or device: reading those would hang or read forever). Follows symbolic links.
void check_regular_file(const std::string& path, const std::string& what);

/// The contents of the regular file `path`, at most `max_bytes` (else an error naming the size
/// and the limit). Checked with fstat on the opened descriptor, which is opened non-blocking so
/// that a FIFO given by mistake is refused instead of blocking the open.
std::string read_regular_file(const std::string& path, const std::string& what, int64_t max_bytes);

}  // namespace longseq
