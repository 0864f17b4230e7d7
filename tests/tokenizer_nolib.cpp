// Built with vit::core only (no utf8proc, no sentencepiece): the tokenizer
// header compiles, and loading a tokenizer names the missing library.
#include <cstdio>
#include <cstring>

#include <vit/tokenizer.hpp>

int main(int argc, char** argv) {
    int ok = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        try {
            const vit::tokenizer t(argv[i]);
            std::printf("%s: loaded without its library\n", argv[i]);
        } catch (const vit::error& e) {
            std::printf("%s\n", e.what());
            if (std::strstr(e.what(), argv[i + 1])) ++ok;
        }
    }
    return ok == (argc - 1) / 2 ? 0 : 1;
}
