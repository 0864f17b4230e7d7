// test::tmp_dir(), apart from helpers.hpp so that tests which need only a
// scratch folder do not compile the model.
#pragma once

#include <cctype>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

#include <catch2/catch.hpp>

namespace test {

// A scratch folder of the running test case's own, so that cases run in
// parallel (ctest -j) never share a path.
inline std::string tmp_dir() {
    const std::string name = Catch::getResultCapture().getCurrentTestName();
    std::string sub;
    std::uint32_t hash = 2166136261u;  // FNV-1a: names that read the same below stay apart
    for (const char c : name) {
        hash = (hash ^ std::uint8_t(c)) * 16777619u;
        if (sub.size() < 60) sub += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    }
    char suffix[10];
    std::snprintf(suffix, sizeof suffix, "-%08x", unsigned(hash));
    const std::string d = std::string(VIT_TEST_TMP) + "/" + sub + suffix;
    std::error_code ec;
    std::filesystem::create_directories(d, ec);
    if (ec) throw std::runtime_error("cannot create " + d + ": " + ec.message());
    return d;
}

}  // namespace test
