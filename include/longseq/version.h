#pragma once
namespace longseq {
constexpr const char* kVersion = "0.1.0";
}
