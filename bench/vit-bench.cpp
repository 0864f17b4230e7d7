// vit-bench: seconds per image of a checkpoint's forward pass, load time and
// peak memory, for comparison with ONNX Runtime and PyTorch on the same machine.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <sys/resource.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <vit/vit.hpp>

namespace {

const char* usage = R"(usage: vit-bench --model DIR [options]

Times the forward pass of a checkpoint on random pixel values: median seconds
per image over --reps timed calls after --warmup calls, the time to load the
model, and the process's peak resident memory.

The input is the size the checkpoint's image processor gives (its crop, or
its resize; without a preprocessor_config.json, config.json's image_size),
and GFLOP/image counts a forward with every token through every layer (a
multiply-add is two operations).

  --model DIR        checkpoint folder (e.g. one written by vit-make-formula)
  --batch B          images per forward call (default 1)
  --threads N        threads (default 2)
  --dtype D          f32 (default), bf16 or int8 (int8 quantizes a float
                     checkpoint at load; an int8 checkpoint is int8 anyway)
  --reps R           timed calls (default 10)
  --warmup W         untimed calls first (default 2)
  --cold N           calls made right after load, before anything waits for
                     packing, as an application makes them (default 20): the
                     time from the start of load to the 1st, 5th and 20th
                     answer (to_1st_s, to_5th_s, to_20th_s), beside
                     load_s + n x the steady median (cold_5_ratio: to_5th_s
                     over load_s + 5 x median_s_per_image x batch)
  --all-tokens       also compute last_hidden_state (every token through the
                     last layer); by default a forward computes what the
                     labels need, as vit-classify and model::classify do
  --profile          also time each stage of the forward pass (layer norms,
                     projections, attention, MLP, ...) over the timed calls
  --image FILE       also time decoding and preprocessing FILE (the bytes in
                     memory, decode_image then make_pixel_values, as
                     vit-serve does per request): decode_s, the median
  --json             one JSON object: median_s_per_image, min/max,
                     gflop_per_image, s_per_gflop, height, width, load_s,
                     ready_s (process start to loaded model), first_s_per_image
                     (the first call right after load), to_1st_s, to_5th_s,
                     to_20th_s, cold_calls_s (each cold call), cold_5_ratio,
                     packed_s (process start to every layer packed, after
                     the cold calls; timing starts after it),
                     peak_rss_mb, ... (and "profile" with --profile)
)";

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Seconds since this process started, from the kernel's accounting.
double seconds_since_process_start() {
    std::ifstream stat("/proc/self/stat"), up("/proc/uptime");
    std::string s;
    std::getline(stat, s);
    const auto close = s.rfind(')');
    if (close == std::string::npos) return -1;
    std::istringstream fields(s.substr(close + 2));
    std::string f;
    unsigned long long start_ticks = 0;
    for (int i = 3; i <= 22 && fields >> f; ++i)
        if (i == 22) start_ticks = std::stoull(f);
    double uptime = 0;
    up >> uptime;
    return uptime - double(start_ticks) / double(sysconf(_SC_CLK_TCK));
}

double median_of(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// The input size the checkpoint's image processor gives (its crop, else its
// resize), what a served image runs at; config.json's image_size without one.
void input_size(const std::string& dir, const vit::config& c, const vit::preprocess_config& p, int& height, int& width) {
    std::ifstream has_processor(dir + "/preprocessor_config.json");
    if (!has_processor) {
        height = c.image_height, width = c.image_width;
    } else if (p.do_center_crop) {
        height = p.crop_height, width = p.crop_width;
    } else if (p.size_mode == vit::size_rule::shortest_edge) {
        height = width = p.shortest_edge;
    } else {
        height = p.height, width = p.width;
    }
}

// Floating-point operations (a multiply-add is two) of one image's forward
// with every token through every layer: the patch projection, and per layer
// q|k|v, the attention scores and context, o_proj and the MLP (SwiGLU's
// weights_in is twice as wide). The heads and pooling are left out (under
// 0.5% of ViT-L's).
double forward_gflop(const vit::config& c, int height, int width) {
    const double H = c.hidden_size, I = c.intermediate_size, P = c.patch_size;
    const double patches = double(height / c.patch_size) * double(width / c.patch_size);
    const double T = patches + c.prefix_tokens();
    const double layer = 2 * T * H * 3 * H + 2 * 2 * T * T * H + 2 * T * H * H + 2 * T * H * I * (c.use_swiglu_ffn ? 3 : 2);
    return (2 * patches * H * c.num_channels * P * P + c.num_hidden_layers * layer) * 1e-9;
}

double peak_rss_mb() {
    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
    return double(ru.ru_maxrss) / 1024.0;
}

}  // namespace

int main(int argc, char** argv) {
    std::string dir, dtype = "f32", image_path;
    int batch = 1, threads = 2, reps = 10, warmup = 2, cold = 20;
    bool json = false, profile = false, all_tokens = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::cerr << "vit-bench: " << a << " needs a value\n";
                std::exit(2);
            }
            return argv[++i];
        };
        try {
            if (a == "--model") dir = next();
            else if (a == "--batch") batch = std::stoi(next());
            else if (a == "--threads") threads = std::stoi(next());
            else if (a == "--dtype") dtype = next();
            else if (a == "--reps") reps = std::stoi(next());
            else if (a == "--warmup") warmup = std::stoi(next());
            else if (a == "--cold") cold = std::stoi(next());
            else if (a == "--image") image_path = next();
            else if (a == "--json") json = true;
            else if (a == "--profile") profile = true;
            else if (a == "--all-tokens") all_tokens = true;
            else if (a == "--help" || a == "-h") {
                std::cout << usage;
                return 0;
            } else {
                std::cerr << "vit-bench: unknown option '" << a << "'\n" << usage;
                return 2;
            }
        } catch (const std::exception&) {
            std::cerr << "vit-bench: " << a << " takes a number\n";
            return 2;
        }
    }
    if (dir.empty() || batch < 1 || threads < 1 || reps < 1 || warmup < 0 || cold < 0 ||
        (dtype != "f32" && dtype != "bf16" && dtype != "int8")) {
        std::cerr << usage;
        return 2;
    }
    const vit::precision prec = dtype == "bf16" ? vit::precision::bf16 : dtype == "int8" ? vit::precision::int8 : vit::precision::f32;
    try {
        const double t0 = now();
        vit::load_options lo;
        lo.compute = prec;
        lo.threads = threads;
        const vit::model m = vit::load_model(dir, lo);
        const double load_s = now() - t0;
        const double ready_s = seconds_since_process_start();
        const vit::config& c = m.config();
        int height = 0, width = 0;
        input_size(dir, c, m.preprocessing(), height, width);
        vit::pixel_values<float> px(batch, c.num_channels, height, width);
        std::mt19937 rng(1);
        std::uniform_real_distribution<float> u(-1.f, 1.f);
        for (auto& v : px.data) v = u(rng);
        vit::workspace<float> ws(threads);
        vit::forward_options fo;
        fo.output_last_hidden_state = all_tokens;
        // The calls right after load (while the layers are packed by the
        // first of them), as an application makes them.
        std::vector<double> cold_s, to_answer;  // each call; start of load to its answer
        for (int i = 0; i < std::max(1, cold); ++i) {
            const double f0 = now();
            m.forward(px, fo, &ws);
            const double f1 = now();
            cold_s.push_back(f1 - f0);
            to_answer.push_back(f1 - t0);
        }
        const double first_s = cold_s[0] / batch;
        auto to_nth = [&](int n) { return int(to_answer.size()) >= n ? to_answer[std::size_t(n - 1)] : -1.0; };
        // The timings below are of the packed layout.
        m.wait_packed();
        const double packed_s = seconds_since_process_start();
        for (int i = 0; i < warmup; ++i) m.forward(px, fo, &ws);
        std::vector<double> per_image;
        vit::profile prof;
        if (profile) fo.profile = &prof;
        for (int i = 0; i < reps; ++i) {
            const double s = now();
            const auto out = m.forward(px, fo, &ws);
            per_image.push_back((now() - s) / batch);
        }
        std::sort(per_image.begin(), per_image.end());
        const double median = median_of(per_image);
        const double gflop = forward_gflop(c, height, width);
        double decode_s = -1;
        if (!image_path.empty()) {
            std::ifstream f(image_path, std::ios::binary);
            if (!f) throw vit::error("cannot read image " + image_path);
            const std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
            const vit::preprocess_config pre = m.preprocessing();
            std::vector<double> dec;
            for (int i = 0; i < warmup + reps; ++i) {
                const double s = now();
                const auto p = vit::make_pixel_values<float>({vit::decode_image(bytes.data(), bytes.size(), image_path)}, pre);
                if (i >= warmup) dec.push_back(now() - s);
            }
            decode_s = median_of(dec);
        }
        nlohmann::json j = {{"model", dir},
                            {"dtype", dtype},
                            {"batch", batch},
                            {"threads", threads},
                            {"reps", reps},
                            {"all_tokens", all_tokens},
                            {"height", height},
                            {"width", width},
                            {"gflop_per_image", gflop},
                            {"median_s_per_image", median},
                            {"s_per_gflop", median / gflop},
                            {"min_s_per_image", per_image.front()},
                            {"max_s_per_image", per_image.back()},
                            {"load_s", load_s},
                            {"ready_s", ready_s},
                            {"packed_s", packed_s},
                            {"first_s_per_image", first_s},
                            {"to_1st_s", to_nth(1)},
                            {"to_5th_s", to_nth(5)},
                            {"to_20th_s", to_nth(20)},
                            {"cold_calls_s", cold_s},
                            {"cold_5_ratio", to_nth(5) / (load_s + 5 * median * batch)},
                            {"peak_rss_mb", peak_rss_mb()}};
        if (decode_s >= 0) j["decode_s"] = decode_s;
        if (prec == vit::precision::bf16) j["bf16"] = vit::bf16_gain();
        // Per image, averaged over the timed calls.
        const double per = 1.0 / (double(reps) * batch);
        if (profile) {
            nlohmann::json pj;
            for (const auto& s : vit::profile::stages()) pj[s.name] = prof.*s.seconds * per;
            j["profile"] = pj;
        }
        if (json) {
            std::cout << j.dump() << "\n";
        } else {
            std::printf("%s, %s, %dx%d, batch %d, %d threads%s: median %.4f s/image (min %.4f, max %.4f, %d runs), %.2f images/s\n",
                        dir.c_str(), dtype.c_str(), width, height, batch, threads, all_tokens ? ", all tokens" : "", median,
                        per_image.front(), per_image.back(), reps, 1.0 / median);
            std::printf("%.2f GFLOP/image (all tokens), %.4f s/GFLOP, %.1f GFLOP/s\n", gflop, median / gflop, gflop / median);
            std::printf("load %.3f s (process start to loaded model %.3f s, to packed weights %.3f s), first call "
                        "%.4f s/image, peak RSS %.0f MB\n",
                        load_s, ready_s, packed_s, first_s, peak_rss_mb());
            if (cold >= 5)
                std::printf("cold process: load to 1st answer %.3f s, to 5th %.3f s (%.3fx load + 5 x median)%s\n",
                            to_nth(1), to_nth(5), to_nth(5) / (load_s + 5 * median * batch),
                            cold >= 20 ? (", to 20th " + std::to_string(to_nth(20)) + " s").c_str() : "");
            if (prec == vit::precision::bf16) std::printf("%s\n", vit::bf16_gain().c_str());
            if (decode_s >= 0) std::printf("decode and preprocess %s: median %.4f s\n", image_path.c_str(), decode_s);
            if (profile) {
                std::printf("%-18s %10s %7s\n", "stage", "ms/image", "share");
                for (const auto& s : vit::profile::stages())
                    std::printf("%-18s %10.2f %6.1f%%\n", s.name, 1e3 * prof.*s.seconds * per,
                                100.0 * prof.*s.seconds / prof.total());
                std::printf("%-18s %10.2f\n", "total", 1e3 * prof.total() * per);
            }
        }
    } catch (const vit::error& e) {
        std::cerr << "vit-bench: " << e.what() << "\n";
        return 1;
    }
}
