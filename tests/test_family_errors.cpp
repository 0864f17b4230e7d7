// Broken family checkpoints: an unknown model_type, CLIP without its
// projection, a SigLIP head of the wrong shape. Each error names the file,
// the field or tensor, and what was expected.
#include <catch2/catch.hpp>

#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "helpers.hpp"

namespace {

using vit::detail::tensor_blob;

// A copy of fixture `name`'s model folder in this test's scratch folder:
// config.json through `config_edit`, the tensors through `tensor_edit`
// (returning false drops a tensor).
std::string edited_copy(const std::string& name, const std::function<void(nlohmann::json&)>& config_edit,
                        const std::function<bool(tensor_blob&)>& tensor_edit = {}) {
    const std::string src = test::data(name + "/model"), dir = test::tmp_dir() + "/" + name;
    REQUIRE(std::system(("rm -rf '" + dir + "' && mkdir -p '" + dir + "' && cp '" + src +
                         "/preprocessor_config.json' '" + dir + "/'")
                            .c_str()) == 0);
    nlohmann::json cfg;
    std::ifstream(src + "/config.json") >> cfg;
    if (config_edit) config_edit(cfg);
    std::ofstream(dir + "/config.json") << cfg.dump(1);
    const auto store = vit::detail::read_safetensors(src + "/model.safetensors");
    std::vector<tensor_blob> blobs;
    for (const auto& kv : store.all()) {
        const auto& t = kv.second.tensor;
        tensor_blob b{kv.first, t.type, t.shape, std::vector<unsigned char>(t.data, t.data + t.nbytes)};
        if (!tensor_edit || tensor_edit(b)) blobs.push_back(std::move(b));
    }
    vit::detail::write_safetensors(dir + "/model.safetensors", blobs);
    return dir;
}

std::string load_error(const std::string& dir) {
    try {
        vit::load_model(dir);
    } catch (const vit::error& e) {
        return e.what();
    }
    FAIL("loading " << dir << " did not throw");
    return {};
}

}  // namespace

TEST_CASE("an unknown model_type names itself, the file and the supported types", "[family][errors]") {
    const std::string dir = edited_copy("dinov2-tiny", [](nlohmann::json& c) { c["model_type"] = "mae"; });
    const std::string msg = load_error(dir);
    INFO(msg);
    CHECK(msg.find(dir + "/config.json") != std::string::npos);
    CHECK(msg.find("'mae'") != std::string::npos);
    for (const char* t : {"vit", "dinov2", "dinov2_with_registers", "deit", "clip", "siglip"})
        CHECK(msg.find(t) != std::string::npos);
}

TEST_CASE("CLIP with a projection promised and missing: the tensor and the folder", "[family][errors][clip]") {
    for (const char* arch : {"CLIPModel", "CLIPVisionModelWithProjection"}) {
        INFO(arch);
        const std::string dir = edited_copy(
            "clip-tiny", [&](nlohmann::json& c) { c["architectures"] = {arch}; },
            [](tensor_blob& b) { return b.name != "visual_projection.weight"; });
        const std::string msg = load_error(dir);
        INFO(msg);
        // A missing tensor is in none of the folder's files: the folder is named.
        CHECK(msg.rfind(dir + ": ", 0) == 0);
        CHECK(msg.find("'visual_projection.weight' is missing") != std::string::npos);
    }
    // CLIPVisionModel has no projection: the same file loads, pooler_output its embedding.
    const std::string dir = edited_copy(
        "clip-tiny", [](nlohmann::json& c) { c["architectures"] = {"CLIPVisionModel"}; },
        [](tensor_blob& b) { return b.name != "visual_projection.weight"; });
    const vit::model m = vit::load_model(dir);
    CHECK(std::string(m.embedding_kind()) == "pooler_output");
    CHECK(m.embedding_size() == m.config().hidden_size);
}

TEST_CASE("a SigLIP head whose in_proj is not 3H x H: the tensor and both shapes", "[family][errors][siglip]") {
    // Drop the value rows: [2H, H] where [3H, H] is needed (H = 64).
    const std::string dir = edited_copy("siglip-tiny", {}, [](tensor_blob& b) {
        if (b.name == "vision_model.head.attention.in_proj_weight") {
            b.shape = {128, 64};
            b.bytes.resize(128 * 64 * 4);
        }
        return true;
    });
    const std::string msg = load_error(dir);
    INFO(msg);
    CHECK(msg.find(dir + "/model.safetensors") != std::string::npos);
    CHECK(msg.find("head.attention.in_proj_weight") != std::string::npos);
    CHECK(msg.find("128") != std::string::npos);
    CHECK(msg.find("192") != std::string::npos);
}
