// Command-line helpers the programs share: a usage error (exit status 2) and
// a bounded integer option, each message prefixed with the program's name.
#pragma once

#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>

namespace cli {

[[noreturn]] inline void usage_error(const char* program, const std::string& msg) {
    std::cerr << program << ": " << msg << "\n(see " << program << " --help)\n";
    std::exit(2);
}

// opt's value v as an integer from lo to hi, or a usage error naming both.
inline int parse_int(const char* program, const std::string& opt, const std::string& v, int lo, int hi) {
    try {
        std::size_t pos = 0;
        const long x = std::stol(v, &pos);
        if (pos == v.size() && x >= lo && x <= hi) return int(x);
    } catch (const std::exception&) {
    }
    usage_error(program, opt + " takes a number from " + std::to_string(lo) + " to " + std::to_string(hi) +
                             ", got '" + v + "'");
}

}  // namespace cli
