// The CLIP and SigLIP tokenizers against transformers: the truth tables of
// tests/data/text/tokenizers (every prompt, no padding, no truncation) and
// the padded, truncated batches stored in the text fixtures' references.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <vit/detail/io/safetensors.hpp>
#include <vit/tokenizer.hpp>

#include "helpers.hpp"

namespace {

struct truth_row {
    std::string text;
    std::vector<std::int64_t> ids;
};

std::vector<truth_row> truth_table(const std::string& file) {
    std::ifstream in(test::data("text/tokenizers/" + file));
    REQUIRE(in);
    std::vector<truth_row> rows;
    std::string line;
    while (std::getline(in, line)) {
        const auto j = nlohmann::json::parse(line);
        rows.push_back({j.at("text").get<std::string>(), j.at("ids").get<std::vector<std::int64_t>>()});
    }
    return rows;
}

// An int64 matrix of the reference, row by row.
std::vector<std::vector<std::int64_t>> int_rows(const vit::detail::tensor_store& store, const std::string& name) {
    const auto* e = store.find(name);
    REQUIRE(e);
    REQUIRE(e->tensor.type == vit::detail::dtype::i64);
    const auto& shape = e->tensor.shape;
    const std::size_t cols = std::size_t(shape.back()), rows = shape.size() == 1 ? 1 : std::size_t(shape.at(0));
    std::vector<std::vector<std::int64_t>> out(rows, std::vector<std::int64_t>(cols));
    for (std::size_t r = 0; r < rows; ++r) std::memcpy(out[r].data(), e->tensor.data + r * cols * 8, cols * 8);
    return out;
}

std::vector<std::string> prompts_of(const std::string& fixture) {
    nlohmann::json ref;
    std::ifstream(test::data(fixture + "/reference.json")) >> ref;
    return ref.at("prompts").get<std::vector<std::string>>();
}

std::vector<std::string> zeroshot_sequences(const std::string& fixture) {
    nlohmann::json ref;
    std::ifstream(test::data(fixture + "/reference.json")) >> ref;
    return ref.at("zeroshot").at("sequences").get<std::vector<std::string>>();
}

void check_truth_table(const vit::tokenizer& tok, const std::string& file) {
    const auto rows = truth_table(file);
    REQUIRE(rows.size() >= 40);
    for (std::size_t i = 0; i < rows.size(); ++i) {
        INFO("prompt " << i << ": " << nlohmann::json(rows[i].text).dump());
        CHECK(tok.ids(rows[i].text) == rows[i].ids);
    }
    // The same prompts as one unpadded, untruncated batch.
    std::vector<std::string> texts;
    for (const auto& r : rows) texts.push_back(r.text);
    vit::text_options o;
    o.padding = vit::text_padding::none;
    o.truncation = false;
    const vit::token_batch b = tok.encode(texts, o);
    for (std::size_t i = 0; i < rows.size(); ++i) {
        CHECK(b.input_ids[i] == rows[i].ids);
        CHECK(b.attention_mask[i] == std::vector<std::int64_t>(rows[i].ids.size(), 1));
    }
}

// The fixture's prompts as one batch with the pipeline's options, and its
// zero-shot label sentences, against the stored model inputs.
void check_reference_batches(const std::string& fixture, const vit::text_options& zeroshot_options) {
    const vit::tokenizer tok(test::data(fixture + "/model"));
    const auto store = vit::detail::read_safetensors(test::data(fixture + "/reference.safetensors"));
    const std::vector<std::string> prompts = prompts_of(fixture);
    const vit::token_batch b = tok.encode(prompts);
    REQUIRE(b.input_ids.size() == prompts.size());
    for (std::size_t i = 0; i < prompts.size(); ++i) {
        char key[32];
        std::snprintf(key, sizeof key, "text.%03zu.", i);
        INFO(fixture << " prompt " << i << ": " << nlohmann::json(prompts[i]).dump());
        CHECK(b.input_ids[i] == int_rows(store, key + std::string("input_ids")).at(0));
        CHECK(b.attention_mask[i] == int_rows(store, key + std::string("attention_mask")).at(0));
    }
    const vit::token_batch z = tok.encode(zeroshot_sequences(fixture), zeroshot_options);
    CHECK(z.input_ids == int_rows(store, "zeroshot.input_ids"));
    CHECK(z.attention_mask == int_rows(store, "zeroshot.attention_mask"));
}

std::string write_file(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
}

// A scratch folder holding the named files of a fixture's model folder.
std::string partial_copy(const std::string& fixture, const std::string& name, const std::vector<std::string>& files) {
    const std::string src = test::data(fixture + "/model"), dir = test::tmp_dir() + "/" + name;
    std::string cmd = "rm -rf '" + dir + "' && mkdir -p '" + dir + "'";
    for (const auto& f : files) cmd += " && cp '" + src + "/" + f + "' '" + dir + "/'";
    REQUIRE(std::system(cmd.c_str()) == 0);
    return dir;
}

}  // namespace

TEST_CASE("CLIP tokenizer equals the truth table", "[tokenizer]") {
    const vit::tokenizer tok(test::data("clip-text-tiny/model"));
    CHECK(tok.type() == vit::tokenizer::kind::clip);
    CHECK(tok.model_max_length() == 77);
    CHECK(tok.pad_id() == 49407);
    CHECK(tok.ids("a photo of a cat") == std::vector<std::int64_t>{49406, 320, 1125, 539, 320, 2368, 49407});
    check_truth_table(tok, "clip_ids.jsonl");
}

TEST_CASE("CLIP tokenizer equals transformers.js on more strings", "[tokenizer]") {
    // Literal <|startoftext|>, control and format characters, ZWJ emoji, Greek,
    // Turkish I, ligatures, NFD input, Unicode spaces (tests/data/text/README.md).
    check_truth_table(vit::tokenizer(test::data("clip-text-tiny/model")), "clip_extra_ids.jsonl");
}

TEST_CASE("CLIP tokenizer from vocab.json and merges.txt equals tokenizer.json's", "[tokenizer]") {
    const std::string dir = partial_copy("clip-text-tiny", "clip-vocab-merges",
                                         {"vocab.json", "merges.txt", "tokenizer_config.json", "config.json"});
    const vit::tokenizer tok(dir);
    check_truth_table(tok, "clip_ids.jsonl");
}

TEST_CASE("CLIP padded and truncated batches equal the reference inputs", "[tokenizer]") {
    vit::text_options zeroshot;  // the pipeline's call: padding=True, no truncation
    zeroshot.padding = vit::text_padding::longest;
    zeroshot.truncation = false;
    check_reference_batches("clip-text-tiny", zeroshot);

    const vit::tokenizer tok(test::data("clip-text-tiny/model"));
    const auto rows = truth_table("clip_ids.jsonl");
    // Truncation keeps both specials: <|startoftext|>, the first 75, <|endoftext|>.
    const auto& longest = rows.at(39).ids;
    REQUIRE(longest.size() > 77);
    const vit::token_batch b = tok.encode({rows.at(39).text});
    REQUIRE(b.input_ids.at(0).size() == 77);
    CHECK(std::equal(b.input_ids[0].begin(), b.input_ids[0].end() - 1, longest.begin()));
    CHECK(b.input_ids[0].back() == 49407);
}

TEST_CASE("SigLIP tokenizer equals the truth table", "[tokenizer][sentencepiece]") {
    const vit::tokenizer tok(test::data("siglip-text-tiny/model"));
    CHECK(tok.type() == vit::tokenizer::kind::siglip);
    CHECK(tok.model_max_length() == 64);
    CHECK(tok.pad_id() == 1);
    CHECK(tok.ids("") == std::vector<std::int64_t>{1});
    check_truth_table(tok, "siglip_ids.jsonl");
}

TEST_CASE("SigLIP tokenizer equals SiglipTokenizer's steps on more strings", "[tokenizer][sentencepiece]") {
    // Literal </s> and <unk> (also upper case), "▁" in the text, Python-only
    // whitespace, NFKC forms (tests/data/text/README.md).
    check_truth_table(vit::tokenizer(test::data("siglip-text-tiny/model")), "siglip_extra_ids.jsonl");
}

TEST_CASE("SigLIP padded and truncated batches equal the reference inputs", "[tokenizer][sentencepiece]") {
    vit::text_options zeroshot;  // padding="max_length", max_length=64, truncation=True
    zeroshot.padding = vit::text_padding::max_length;
    zeroshot.max_length = 64;
    check_reference_batches("siglip-text-tiny", zeroshot);
}

TEST_CASE("Tokenizer options: padding and max_length", "[tokenizer]") {
    const vit::tokenizer tok(test::data("clip-text-tiny/model"));
    vit::text_options o;
    o.padding = vit::text_padding::max_length;
    o.max_length = 10;
    const vit::token_batch b = tok.encode({"a photo of a cat", "", "one two three four five six seven eight nine"}, o);
    CHECK(b.input_ids[0] == std::vector<std::int64_t>{49406, 320, 1125, 539, 320, 2368, 49407, 49407, 49407, 49407});
    CHECK(b.attention_mask[0] == std::vector<std::int64_t>{1, 1, 1, 1, 1, 1, 1, 0, 0, 0});
    CHECK(b.input_ids[1] == std::vector<std::int64_t>{49406, 49407, 49407, 49407, 49407, 49407, 49407, 49407, 49407, 49407});
    CHECK(b.input_ids[2].size() == 10);
    CHECK(b.input_ids[2].front() == 49406);
    CHECK(b.input_ids[2].back() == 49407);
    CHECK(b.attention_mask[2] == std::vector<std::int64_t>(10, 1));
    CHECK(tok.encode({}).input_ids.empty());
    o.max_length = 1;
    CHECK_THROWS_WITH(tok.encode({"x"}, o), Catch::Contains("max_length 1"));
}

TEST_CASE("Tokenizers refuse invalid UTF-8, naming the text and the byte", "[tokenizer][hostile][sentencepiece]") {
    const vit::tokenizer clip(test::data("clip-text-tiny/model"));
    const vit::tokenizer siglip(test::data("siglip-text-tiny/model"));
    const std::vector<std::pair<std::string, std::string>> bad = {
        {"caf\xe9", "sequence cut short"},           // Latin-1
        {"a\xff" "b", "invalid lead byte"},
        {"\x80", "unexpected continuation byte"},
        {"\xc0\xaf", "overlong"},
        {"\xed\xa0\x80", "surrogate"},
        {"\xf4\x90\x80\x80", "past U+10FFFF"},
        {"\xe2\x82x", "expected a continuation byte"},
    };
    for (const auto& [text, why] : bad) {
        INFO(vit::detail::escape_for_message(text));
        CHECK_THROWS_WITH(clip.encode({"fine", text}), Catch::Contains("text 1: not valid UTF-8") && Catch::Contains(why));
        CHECK_THROWS_WITH(siglip.encode({text}), Catch::Contains("text 0: not valid UTF-8") && Catch::Contains(why));
    }
    CHECK_THROWS_WITH(clip.ids("ok \xff"), Catch::Contains("byte 0xff at offset 3"));
}

TEST_CASE("Tokenizers name the folder and the missing file", "[tokenizer][hostile][sentencepiece]") {
    const std::string nothing = partial_copy("clip-text-tiny", "tok-none", {"preprocessor_config.json"});
    CHECK_THROWS_WITH(vit::tokenizer(nothing), Catch::Contains(nothing) && Catch::Contains("no tokenizer files"));
    CHECK_THROWS_WITH(vit::tokenizer(nothing + "/absent"), Catch::Contains("absent: not a checkpoint folder"));

    const std::string clip_cfg = partial_copy("clip-text-tiny", "tok-clip-cfg", {"config.json", "tokenizer_config.json"});
    CHECK_THROWS_WITH(vit::tokenizer(clip_cfg), Catch::Contains(clip_cfg) && Catch::Contains("tokenizer.json is missing") &&
                                                    Catch::Contains("vocab.json + merges.txt"));
    const std::string clip_vocab = partial_copy("clip-text-tiny", "tok-clip-vocab", {"config.json", "vocab.json"});
    CHECK_THROWS_WITH(vit::tokenizer(clip_vocab), Catch::Contains(clip_vocab) && Catch::Contains("merges.txt"));

    const std::string siglip_cfg = partial_copy("siglip-text-tiny", "tok-siglip-cfg", {"config.json", "tokenizer_config.json"});
    CHECK_THROWS_WITH(vit::tokenizer(siglip_cfg), Catch::Contains(siglip_cfg) && Catch::Contains("spiece.model is missing"));

    const std::string broken = partial_copy("siglip-text-tiny", "tok-siglip-broken", {"config.json", "tokenizer_config.json"});
    write_file(broken + "/spiece.model", "not a protobuf");
    CHECK_THROWS_WITH(vit::tokenizer(broken), Catch::Contains("spiece.model: not a SentencePiece model"));

    const std::string bad_json = partial_copy("clip-text-tiny", "tok-clip-badjson", {"config.json"});
    write_file(bad_json + "/tokenizer.json", "{\"model\": ");
    CHECK_THROWS_WITH(vit::tokenizer(bad_json), Catch::Contains("tokenizer.json: not valid JSON"));
}

TEST_CASE("Tokenizers encode on several threads at once", "[tokenizer][sentencepiece]") {
    for (const char* name : {"clip", "siglip"}) {
        const vit::tokenizer tok(test::data(std::string(name) + "-text-tiny/model"));
        const auto rows = truth_table(std::string(name) + "_ids.jsonl");
        std::vector<std::string> texts;
        for (const auto& r : rows) texts.push_back(r.text);
        const vit::token_batch want = tok.encode(texts);
        std::vector<vit::token_batch> got(4);
        std::vector<std::thread> threads;
        for (auto& g : got)
            threads.emplace_back([&tok, &texts, &g] {
                for (int rep = 0; rep < 20; ++rep) g = tok.encode(texts);
            });
        for (auto& t : threads) t.join();
        for (const auto& g : got) {
            CHECK(g.input_ids == want.input_ids);
            CHECK(g.attention_mask == want.attention_mask);
        }
    }
}
