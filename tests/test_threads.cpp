// One loaded model shared by several threads, each with its own workspace:
// forward() is const and keeps all its state in the workspace, so concurrent
// calls must give exactly (bit for bit) what one thread alone gets. Run under
// ThreadSanitizer too (see .ci/sanitize.sh, VIT_TSAN=1).
#include <catch2/catch.hpp>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <vit/image.hpp>
#include <vit/model.hpp>

#include "helpers.hpp"

namespace {

struct job {
    std::string name;
    vit::pixel_values<float> px;
    vit::forward_options options;
};

struct result {
    vit::matrix<float> logits, last_hidden_state;
    std::vector<vit::matrix<float>> attentions;
};

result run(const vit::model& m, const job& j, vit::workspace<float>& ws) {
    vit::output<float> out = m.forward(j.px, j.options, &ws);
    return {std::move(out.logits), std::move(out.last_hidden_state), std::move(out.attentions)};
}

template <class Mat>
bool bit_equal(const Mat& a, const Mat& b) {
    return a.rows() == b.rows() && a.cols() == b.cols() &&
           std::memcmp(a.data(), b.data(), sizeof(float) * std::size_t(a.size())) == 0;
}

bool bit_equal(const result& a, const result& b) {
    if (!bit_equal(a.logits, b.logits) || !bit_equal(a.last_hidden_state, b.last_hidden_state)) return false;
    if (a.attentions.size() != b.attentions.size()) return false;
    for (std::size_t i = 0; i < a.attentions.size(); ++i)
        if (!bit_equal(a.attentions[i], b.attentions[i])) return false;
    return true;
}

// The fixture images at 384x384, a batch of two, and one non-square input
// whose position embeddings are interpolated (and cached per workspace).
std::vector<job> jobs() {
    const test::reference ref(test::data("vit-tiny-random/reference.safetensors"));
    std::vector<job> out;
    for (const auto& stem : test::image_stems())
        out.push_back({stem, test::pixels_from_refs<float>({ref.get(stem + ".resized_u8")}), {}});
    out.push_back({"batch of 2", test::pixels_from_refs<float>({ref.get("chelsea.resized_u8"), ref.get("coffee.resized_u8")}),
                   {}});
    out.push_back({"448x320", test::pixels_from_refs<float>({ref.get("coco_cats.resized_u8_448x320")}), {}});
    job with_attn = out.front();
    with_attn.name += " with attentions";
    with_attn.options.output_attentions = true;
    out.push_back(with_attn);
    return out;
}

}  // namespace

TEST_CASE("threads: one model, four threads with their own workspaces, results bit-equal to one thread",
          "[threads]") {
    const vit::model m = vit::load_model(test::data("vit-tiny-random/model"));
    const std::vector<job> work = jobs();

    // A workspace of 2 threads runs its parallel_for on its own pool: the
    // pools of concurrent callers must not interfere either. Work is split
    // over independent rows and heads, so the pool size does not change bits.
    for (const int pool_threads : {1, 2}) {
        CAPTURE(pool_threads);
        std::vector<result> expected;
        {
            vit::workspace<float> ws(pool_threads);
            for (const job& j : work) expected.push_back(run(m, j, ws));
        }

        constexpr int threads = 4, rounds = 12;
        std::atomic<int> mismatches{0}, runs{0}, failures{0};
        std::vector<std::string> first_mismatch(threads);
        std::vector<std::thread> pool;
        for (int t = 0; t < threads; ++t) {
            pool.emplace_back([&, t] {
                try {
                    // One workspace reused across calls and sizes, as an
                    // application thread would: grows, shrinks back, re-caches.
                    vit::workspace<float> ws(pool_threads);
                    for (int r = 0; r < rounds; ++r) {
                        // Each thread walks the jobs from its own starting point,
                        // so different images run at the same time.
                        for (std::size_t k = 0; k < work.size(); ++k) {
                            const std::size_t i = (k + std::size_t(t) * 3 + std::size_t(r)) % work.size();
                            const result got = run(m, work[i], ws);
                            ++runs;
                            if (!bit_equal(got, expected[i]) && mismatches++ == 0) first_mismatch[t] = work[i].name;
                        }
                    }
                } catch (...) {
                    ++failures;
                }
            });
        }
        for (auto& th : pool) th.join();
        for (const auto& name : first_mismatch) CHECK(name.empty());
        CHECK(failures == 0);
        CHECK(mismatches == 0);
        CHECK(runs == threads * rounds * int(work.size()));
    }
}

TEST_CASE("threads: concurrent loads of the same checkpoint", "[threads]") {
    // Loading maps the files read-only and shares nothing between models.
    std::vector<std::thread> pool;
    std::atomic<int> ok{0};
    std::vector<vit::matrix<float>> logits(3);
    const test::reference ref(test::data("vit-tiny-random/reference.safetensors"));
    const vit::pixel_values<float> px = test::pixels_from_refs<float>({ref.get("coco_cats.resized_u8")});
    for (int t = 0; t < 3; ++t) {
        pool.emplace_back([&, t] {
            try {
                const vit::model m = vit::load_model(test::data(t == 2 ? "vit-tiny-random/pytorch_model"
                                                                       : "vit-tiny-random/model"));
                logits[std::size_t(t)] = m.forward(px).logits;
                ++ok;
            } catch (...) {
            }
        });
    }
    for (auto& th : pool) th.join();
    REQUIRE(ok == 3);
    CHECK(bit_equal(logits[0], logits[1]));
    CHECK(bit_equal(logits[0], logits[2]));
}

TEST_CASE("threads: a fresh model's first call equals a packed model's, bit for bit", "[threads]") {
    vit::load_options at_load;
    at_load.background_packing = false;
    const vit::model packed = vit::load_model(test::data("vit-tiny-random/model"), at_load);
    REQUIRE(packed.packed());
    const std::vector<job> work = jobs();
    for (int threads : {1, 2}) {
        CAPTURE(threads);
        for (std::size_t i = 0; i < work.size(); ++i) {
            CAPTURE(work[i].name);
            vit::workspace<float> ws(threads);
            const result expected = run(packed, work[i], ws);
            // The first calls pack a share of the layers each and run the
            // rest from the file; wait_packed() packs what is left (on a
            // fresh model: everything, before any call).
            const vit::model first = vit::load_model(test::data("vit-tiny-random/model"));
            CHECK(bit_equal(run(first, work[i], ws), expected));
            CHECK(bit_equal(run(first, work[i], ws), expected));
            first.wait_packed();
            CHECK(first.packed());
            CHECK(bit_equal(run(first, work[i], ws), expected));
            const vit::model waited = vit::load_model(test::data("vit-tiny-random/model"));
            waited.wait_packed();
            CHECK(waited.packed());
            CHECK(bit_equal(run(waited, work[i], ws), expected));
        }
    }
}

TEST_CASE("threads: concurrent first calls (each packing a share, the others running it from the file) equal calls on packed weights, bit for bit", "[threads]") {
    vit::load_options at_load;
    at_load.background_packing = false;
    const vit::model packed = vit::load_model(test::data("vit-tiny-random/model"), at_load);
    REQUIRE(packed.packed());
    const std::vector<job> work = jobs();
    std::vector<result> expected;
    {
        vit::workspace<float> ws(2);
        for (const job& j : work) expected.push_back(run(packed, j, ws));
    }
    std::atomic<int> mismatches{0}, failures{0};
    for (int round = 0; round < 4; ++round) {
        // Calls start as soon as load returns, from three threads: each
        // packs its share of layers while the others read them from the
        // file, and wait_packed() packs alongside.
        vit::model m = vit::load_model(test::data("vit-tiny-random/model"));
        std::vector<std::thread> callers;
        if (round % 2) callers.emplace_back([&] { m.wait_packed(); });
        for (int t = 0; t < 3; ++t)
            callers.emplace_back([&, t] {
                try {
                    vit::workspace<float> ws(2);
                    for (std::size_t k = 0; k < work.size(); ++k) {
                        const std::size_t i = (k + std::size_t(t)) % work.size();
                        if (!bit_equal(run(m, work[i], ws), expected[i])) ++mismatches;
                    }
                } catch (...) {
                    ++failures;
                }
            });
        for (auto& th : callers) th.join();
        m.wait_packed();
        CHECK(m.packed());
        // Replacing or dropping a model that no call has packed.
        m = vit::load_model(test::data("vit-tiny-random/model"));
        { const vit::model dropped = vit::load_model(test::data("vit-tiny-random/model")); }
        vit::workspace<float> ws(1);
        if (!bit_equal(run(m, work.front(), ws), expected.front())) ++mismatches;
    }
    CHECK(failures == 0);
    CHECK(mismatches == 0);
}
