// Running vit-classify as a user does: a real process, its output and exit status.
#pragma once

#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

namespace test {

struct run_result {
    int status = -1;
    std::string out;  // stdout
};

// Runs a command line with the shell; its stdout and exit status.
inline run_result run_shell(const std::string& cmd) {
    run_result r;
    FILE* p = ::popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    std::array<char, 4096> buf{};
    std::size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
    const int st = ::pclose(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

// Runs `args` after the classifier's path with a shell, `env` before it.
inline run_result run(const std::string& args, const std::string& env = "") {
    return run_shell(env + " '" + std::string(VIT_CLASSIFY) + "' " + args);
}

inline std::vector<nlohmann::json> json_lines(const std::string& s) {
    std::vector<nlohmann::json> out;
    std::istringstream in(s);
    std::string line;
    while (std::getline(in, line))
        if (!line.empty()) out.push_back(nlohmann::json::parse(line));
    return out;
}

inline std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace test
