// vit-classify as a task of a large run: shards, part files, resume, exit statuses.
#include <catch2/catch.hpp>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include <spawn.h>
#include <unistd.h>

#include "cli.hpp"
#include "helpers.hpp"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using test::json_lines;
using test::run;
using test::slurp;

const std::string tiny = test::data("vit-tiny-random/model");

std::string q(const std::string& s) { return "'" + s + "'"; }

void sh(const std::string& cmd) { REQUIRE(std::system(cmd.c_str()) == 0); }

// `copies` copies of every fixture image under distinct names in a fresh
// folder, and a list of them, one a line, in that folder's "list.txt".
std::vector<std::string> image_copies(const std::string& dir, int copies) {
    sh("rm -rf " + q(dir) + " && mkdir -p " + q(dir + "/img"));
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(test::data("images"))) {
        for (int c = 0; c < copies; ++c) {
            const std::string name = dir + "/img/" + std::to_string(c) + "-" + e.path().filename().string();
            fs::copy_file(e.path(), name);
            names.push_back(name);
        }
    }
    std::sort(names.begin(), names.end());
    std::ofstream list(dir + "/list.txt");
    for (const auto& n : names) list << n << "\n";
    return names;
}

void write_list(const std::string& path, const std::vector<std::string>& names) {
    std::ofstream out(path);
    for (const auto& n : names) out << n << "\n";
}

// The records of every part file in a folder, by part name.
std::map<std::string, std::vector<nlohmann::json>> read_parts(const std::string& dir) {
    std::map<std::string, std::vector<nlohmann::json>> parts;
    for (const auto& e : fs::directory_iterator(dir)) {
        const std::string name = e.path().filename().string();
        if (name.rfind("part-", 0) == 0 && e.path().extension() == ".jsonl") parts[name] = json_lines(slurp(e.path().string()));
    }
    return parts;
}

std::set<std::string> images_of(const std::vector<nlohmann::json>& records) {
    std::set<std::string> s;
    for (const auto& r : records) s.insert(r.at("image").get<std::string>());
    return s;
}

// Same image, same top-k, logits within 1e-6.
void check_same_record(const nlohmann::json& got, const nlohmann::json& want) {
    INFO(got.at("image").get<std::string>());
    REQUIRE(got.at("predictions").size() == want.at("predictions").size());
    for (std::size_t k = 0; k < want.at("predictions").size(); ++k) {
        CHECK(got.at("predictions").at(k).at("index") == want.at("predictions").at(k).at("index"));
        CHECK(got.at("predictions").at(k).at("label") == want.at("predictions").at(k).at("label"));
    }
    REQUIRE(got.at("logits").size() == want.at("logits").size());
    double worst = 0;
    for (std::size_t i = 0; i < want.at("logits").size(); ++i)
        worst = std::max(worst, std::abs(got.at("logits").at(i).get<double>() - want.at("logits").at(i).get<double>()));
    CHECK(worst <= 1e-6);
}

std::size_t count_lines(const std::string& path) {
    const std::string s = slurp(path);
    return std::size_t(std::count(s.begin(), s.end(), '\n'));
}

}  // namespace

TEST_CASE("vit-classify shards: by flag, Slurm and Kubernetes the same partition", "[scale]") {
    const std::string dir = test::tmp_dir() + "/shards";
    const auto names = image_copies(dir, 8);
    const std::string common = "--model " + q(tiny) + " --logits --batch 3 --threads 1 --files-from ";
    REQUIRE(run(common + q(dir + "/list.txt") + " --output " + q(dir + "/whole") + " 2>/dev/null").status == 0);
    const auto whole = read_parts(dir + "/whole");
    REQUIRE(whole.size() == 1);
    const auto& all = whole.at("part-00000-of-00001.jsonl");
    REQUIRE(images_of(all) == std::set<std::string>(names.begin(), names.end()));
    std::map<std::string, nlohmann::json> by_image;
    for (const auto& r : all) by_image[r.at("image").get<std::string>()] = r;

    std::vector<std::string> reversed(names.rbegin(), names.rend());
    write_list(dir + "/reversed.txt", reversed);
    struct way {
        std::string name, list;
        std::function<std::string(int)> args, env;
    };
    const std::vector<way> ways = {
        {"flag", "list.txt", [](int i) { return "--shard " + std::to_string(i) + "/4"; }, [](int) { return std::string(); }},
        {"reversed", "reversed.txt", [](int i) { return "--shard " + std::to_string(i) + "/4"; },
         [](int) { return std::string(); }},
        {"slurm", "list.txt", [](int) { return std::string(); },
         [](int i) { return "SLURM_ARRAY_TASK_ID=" + std::to_string(i) + " SLURM_ARRAY_TASK_COUNT=4"; }},
        // Each task rerun alone (sbatch --array=I): the count from --shard-count.
        {"slurm-rerun", "list.txt", [](int) { return std::string("--shard-count 4"); },
         [](int i) {
             return "SLURM_ARRAY_TASK_ID=" + std::to_string(i) + " SLURM_ARRAY_TASK_MIN=" + std::to_string(i) +
                    " SLURM_ARRAY_TASK_COUNT=1";
         }},
        {"kubernetes", "list.txt", [](int) { return std::string("--shard-count 4"); },
         [](int i) { return "JOB_COMPLETION_INDEX=" + std::to_string(i); }},
    };
    std::vector<std::set<std::string>> first;
    for (const auto& w : ways) {
        INFO("shards chosen by " << w.name);
        const std::string out = dir + "/" + w.name;
        for (int i = 0; i < 4; ++i)
            REQUIRE(run(common + q(dir + "/" + w.list) + " --output " + q(out) + " " + w.args(i) + " 2>/dev/null", w.env(i))
                        .status == 0);
        const auto parts = read_parts(out);
        REQUIRE(parts.size() == 4);
        std::vector<std::set<std::string>> shards;
        std::size_t records = 0;
        std::set<std::string> seen;
        for (int i = 0; i < 4; ++i) {
            const auto& p = parts.at("part-0000" + std::to_string(i) + "-of-00004.jsonl");
            records += p.size();
            shards.push_back(images_of(p));
            CHECK(shards.back().size() == p.size());  // no image twice in a part
            CHECK(!shards.back().empty());
            for (const auto& r : p) check_same_record(r, by_image.at(r.at("image").get<std::string>()));
            seen.insert(shards.back().begin(), shards.back().end());
        }
        CHECK(records == names.size());  // disjoint: no image in two parts
        CHECK(seen == std::set<std::string>(names.begin(), names.end()));
        if (first.empty()) first = shards;
        else CHECK(shards == first);
    }
    // A task that chose another shard count must not add to these parts.
    const auto mixed = run(common + q(dir + "/list.txt") + " --output " + q(dir + "/flag") + " --shard 0/1 --resume 2>&1");
    CHECK(mixed.status == 3);
    CHECK(mixed.out.find("another shard count") != std::string::npos);
    CHECK(!fs::exists(dir + "/flag/part-00000-of-00001.jsonl"));
}

TEST_CASE("vit-classify --resume after SIGKILL: every input once, earlier records untouched", "[scale]") {
    const std::string dir = test::tmp_dir() + "/kill";
    auto names = image_copies(dir, 100);  // 500 images, a few seconds on one thread
    const std::string out = dir + "/out", part = out + "/part-00000-of-00001.jsonl";
    const std::string cli = VIT_CLASSIFY, list = dir + "/list.txt";
    std::vector<std::string> argv_s = {cli,    "--model", tiny, "--files-from", list, "--output", out, "--chunk", "16",
                                       "--batch", "4",     "--threads", "1"};
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid = 0;
    REQUIRE(posix_spawn(&pid, cli.c_str(), &fa, nullptr, argv.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&fa);
    // Kill it once two chunks are in, well before the end.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while ((!fs::exists(part) || count_lines(part) < 32) && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ::kill(pid, SIGKILL);
    int st = 0;
    REQUIRE(::waitpid(pid, &st, 0) == pid);
    REQUIRE(WIFSIGNALED(st));  // killed mid-run, not finished
    const std::string before = slurp(part);
    const auto records_before = json_lines(before);
    CHECK(records_before.size() >= 32);
    CHECK(records_before.size() < names.size());
    CHECK(records_before.size() % 16 == 0);  // whole chunks only
    CHECK(before.back() == '\n');

    const auto resumed = run("--model " + q(tiny) + " --files-from " + q(list) + " --output " + q(out) +
                             " --chunk 16 --batch 4 --resume 2>/dev/null");
    CHECK(resumed.status == 0);
    const std::string after = slurp(part);
    CHECK(after.substr(0, before.size()) == before);
    const auto records = json_lines(after);
    CHECK(records.size() == names.size());
    CHECK(images_of(records) == std::set<std::string>(names.begin(), names.end()));

    // Without --resume an existing part is refused and left alone.
    const auto again = run("--model " + q(tiny) + " --files-from " + q(list) + " --output " + q(out) + " 2>&1");
    CHECK(again.status == 3);
    CHECK(again.out.find("--resume") != std::string::npos);
    CHECK(slurp(part) == after);
}

TEST_CASE("vit-classify --output: a corrupt image is a record, a missing model exit 3", "[scale]") {
    const std::string dir = test::tmp_dir() + "/failures";
    auto names = image_copies(dir, 2);
    sh("printf 'not an image' > " + q(dir + "/img/broken.jpg"));
    names.push_back(dir + "/img/broken.jpg");
    write_list(dir + "/list.txt", names);
    const auto r = run("--model " + q(tiny) + " --files-from " + q(dir + "/list.txt") + " --output " + q(dir + "/out") + " 2>&1");
    CHECK(r.status == 1);
    CHECK(r.out.find("1 failed") != std::string::npos);  // the progress line, stderr not a terminal
    const auto records = json_lines(slurp(dir + "/out/part-00000-of-00001.jsonl"));
    REQUIRE(records.size() == names.size());
    std::size_t labelled = 0;
    for (const auto& rec : records) {
        if (rec.at("image") == dir + "/img/broken.jpg") {
            CHECK(rec.at("error").get<std::string>().find("broken.jpg") != std::string::npos);
        } else {
            CHECK(rec.at("predictions").size() == 5);
            ++labelled;
        }
    }
    CHECK(labelled == names.size() - 1);

    const auto missing = run("--model " + q(dir + "/no-model") + " --files-from " + q(dir + "/list.txt") + " --output " +
                             q(dir + "/out-missing") + " 2>&1");
    CHECK(missing.status == 3);
    CHECK(missing.out.find("no-model") != std::string::npos);
    CHECK(!fs::exists(dir + "/out-missing"));
    const auto no_list = run("--model " + q(tiny) + " --files-from " + q(dir + "/none.txt") + " --output " +
                             q(dir + "/out-nolist") + " 2>&1");
    CHECK(no_list.status == 3);
    CHECK(no_list.out.find("none.txt") != std::string::npos);
    CHECK(!fs::exists(dir + "/out-nolist"));
}

TEST_CASE("vit-classify --features --output: a .npy numpy loads, rows as the JSON says", "[scale]") {
    const std::string dir = test::tmp_dir() + "/npy";
    image_copies(dir, 4);
    const std::string model = test::data("vit-tiny-features/model");
    const auto inline_run = run("--model " + q(model) + " --features --files-from " + q(dir + "/list.txt"));
    REQUIRE(inline_run.status == 0);
    {
        std::ofstream f(dir + "/inline.jsonl");
        f << inline_run.out;
    }
    // Two runs into one part, the second resumed, so rows continue across runs.
    sh("head -n 7 " + q(dir + "/list.txt") + " > " + q(dir + "/first.txt"));
    REQUIRE(run("--model " + q(model) + " --features --chunk 3 --files-from " + q(dir + "/first.txt") + " --output " +
                q(dir + "/out") + " 2>/dev/null")
                .status == 0);
    REQUIRE(run("--model " + q(model) + " --features --chunk 3 --files-from " + q(dir + "/list.txt") + " --output " +
                q(dir + "/out") + " --resume 2>/dev/null")
                .status == 0);
    const std::string check = dir + "/check.py";
    {
        std::ofstream py(check);
        py << R"(import json, sys
try:
    import numpy as np
except ImportError:
    sys.exit("numpy is needed for this test: apt-get install python3-numpy")
out, inline = sys.argv[1], sys.argv[2]
a = np.load(out + "/part-00000-of-00001.npy")
assert a.dtype == np.float32 and a.ndim == 2, (a.dtype, a.shape)
records = [json.loads(l) for l in open(out + "/part-00000-of-00001.jsonl")]
want = {}
for l in open(inline):
    j = json.loads(l)
    want[j["image"]] = np.array(j["features"], dtype=np.float64)
assert a.shape[0] == len(records) == len(want), (a.shape, len(records), len(want))
assert sorted(r["row"] for r in records) == list(range(len(records)))
worst = max(float(np.abs(a[r["row"]].astype(np.float64) - want[r["image"]]).max()) for r in records)
assert worst <= 1e-6, worst
assert all(r["kind"] == "pooler_output" and "features" not in r for r in records)
print("ok", a.shape, worst)
)";
    }
    const auto py = test::run_shell("/usr/bin/python3 " + q(check) + " " + q(dir + "/out") + " " + q(dir + "/inline.jsonl") + " 2>&1");
    INFO(py.out);
    CHECK(py.status == 0);
    CHECK(py.out.rfind("ok", 0) == 0);
}

TEST_CASE("vit-classify: -0, --recursive and sharding usage errors", "[scale]") {
    const std::string dir = test::tmp_dir() + "/lists";
    const auto names = image_copies(dir, 1);
    sh("mkdir -p " + q(dir + "/img/sub/deeper") + " && cp " + q(names[0]) + " " + q(dir + "/img/sub/deeper/x y.png"));
    sh("find " + q(dir + "/img") + " -type f -print0 > " + q(dir + "/nul.txt"));
    const auto nul = run("--model " + q(tiny) + " --json -0 --files-from - < " + q(dir + "/nul.txt") + " 2>/dev/null");
    CHECK(nul.status == 0);
    CHECK(json_lines(nul.out).size() == names.size() + 1);
    const auto flat = run("--model " + q(tiny) + " --json " + q(dir + "/img"));
    CHECK(json_lines(flat.out).size() == names.size());
    const auto deep = run("--model " + q(tiny) + " --json --recursive " + q(dir + "/img"));
    const auto deep_records = json_lines(deep.out);
    CHECK(deep_records.size() == names.size() + 1);
    CHECK(images_of(deep_records).count(dir + "/img/sub/deeper/x y.png") == 1);

    const std::string img = q(names[0]);
    for (const auto& bad : std::vector<std::pair<std::string, std::string>>{
             {"--shard 4/4", ""},
             {"--shard 1", ""},
             {"--shard a/b", ""},
             {"--shard 0/0", ""},
             {"--shard-count 4", ""},
             {"", "JOB_COMPLETION_INDEX=1"},
             {"--shard-count 2", "JOB_COMPLETION_INDEX=2"},
             {"", "SLURM_ARRAY_TASK_ID=x SLURM_ARRAY_TASK_COUNT=2"},
             {"", "SLURM_ARRAY_TASK_ID=3 SLURM_ARRAY_TASK_COUNT=2"},
             {"", "SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_TASK_MIN=1 SLURM_ARRAY_TASK_COUNT=1"},  // a rerun needs --shard-count
             {"--shard 0/2 --shard-count 2", ""},
             {"--resume", ""},
             {"--chunk 0 --output " + q(dir + "/o"), ""},
         }) {
        INFO(bad.second << " vit-classify " << bad.first);
        const auto r = run("--model " + q(tiny) + " " + bad.first + " " + img + " 2>&1", bad.second);
        CHECK(r.status == 2);
        CHECK(r.out.find("see vit-classify --help") != std::string::npos);
    }
    // An explicit flag wins over the environment.
    const auto flag_wins = run("--model " + q(tiny) + " --json --shard 0/1 " + img, "JOB_COMPLETION_INDEX=1");
    CHECK(flag_wins.status == 0);
    CHECK(json_lines(flag_wins.out).size() == 1);
}

TEST_CASE("docs/scale.md: the Kubernetes Indexed Job's command line works as written", "[scale]") {
    const std::string doc = slurp(std::string(VIT_TEST_DATA) + "/../../docs/scale.md");
    const auto marker = doc.find("<!-- kubernetes-indexed-job -->");
    REQUIRE(marker != std::string::npos);
    const auto line_at = doc.find("- exec vit-classify ", marker);
    REQUIRE(line_at != std::string::npos);
    const std::string command = doc.substr(line_at + 2, doc.find('\n', line_at) - line_at - 2);
    const auto count_at = command.find("--shard-count ");
    REQUIRE(count_at != std::string::npos);
    const int count = std::stoi(command.substr(count_at + 14));
    REQUIRE(doc.find("completions: " + std::to_string(count) + "\n", marker) != std::string::npos);

    const std::string dir = test::tmp_dir() + "/kubernetes";
    const auto names = image_copies(dir, 8);
    std::ofstream(dir + "/command.sh") << command << "\n";
    const std::string bin = fs::path(VIT_CLASSIFY).parent_path().string();
    for (int i = 0; i < count; ++i) {
        INFO("JOB_COMPLETION_INDEX=" << i << " sh -c '" << command << "'");
        const auto r = test::run_shell("PATH=" + q(bin) + ":\"$PATH\" MODEL=" + q(tiny) + " LIST=" + q(dir + "/list.txt") +
                                       " OUT=" + q(dir + "/out") + " JOB_COMPLETION_INDEX=" + std::to_string(i) + " sh " +
                                       q(dir + "/command.sh") + " 2>/dev/null");
        CHECK(r.status == 0);
    }
    const auto parts = read_parts(dir + "/out");
    CHECK(parts.size() == std::size_t(count));
    std::size_t records = 0;
    std::set<std::string> seen;
    for (const auto& [name, recs] : parts) {
        records += recs.size();
        for (const auto& r : recs) seen.insert(r.at("image").get<std::string>());
    }
    CHECK(records == names.size());
    CHECK(seen == std::set<std::string>(names.begin(), names.end()));
}
