// Every path option of every job, given what careless and hostile users give (issue 33): a FIFO, an
// empty folder where a file goes (a plain file where a folder goes), a symlink loop, and another
// option's path (an output naming an input or another output; an input naming an output). Each run
// must end within its time limit with a non-zero exit, exactly one error line that names the flag or
// the path, nothing left in its working directory and every fixture unchanged.
//
// The options and their roles come from the job registry's declarations, so an option added later
// is swept without touching this file; a job added later fails the sweep until it has a base
// command below. Usage: vitslim_path_sweep VITSLIM_BIN TEST_DATA_DIR [JOB...]
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/options.h"
#include "jobs/job.h"

namespace fs = std::filesystem;
using Args = std::vector<std::string>;

namespace {

constexpr int kCaseSeconds = 120;  // a run that takes longer hangs (or ran a job it should have refused)
constexpr int kClasses = 10;       // vit_test's head: the image folder has as many class folders

struct Outcome {
  bool timed_out = false;
  int status = -1;  // exit status, or -1 when killed by a signal
  std::string err;
};

// Runs `bin args` in `cwd` (stdin /dev/null, stdout discarded, stderr returned), killed after `seconds`.
Outcome run(const std::string& bin, const Args& args, const fs::path& cwd, const fs::path& err_file, int seconds) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);  // the run and anything it starts (an MPI daemon) are killed together
    if (::chdir(cwd.c_str()) != 0) ::_exit(127);
    const int in = ::open("/dev/null", O_RDONLY), out = ::open("/dev/null", O_WRONLY);
    const int err = ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    std::vector<char*> argv{const_cast<char*>(bin.c_str())};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(bin.c_str(), argv.data());
    ::_exit(127);
  }
  Outcome o;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  int status = 0;
  for (pid_t got; (got = ::waitpid(pid, &status, WNOHANG)) <= 0;) {
    if (got < 0 && errno != EINTR) {
      status = W_EXITCODE(255, 0);  // cannot wait: reported as a failed run, never as exit 0
      break;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      o.timed_out = true;
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(-pid, SIGKILL);  // what the run left running in its group
  o.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(err_file);
  o.err.assign(std::istreambuf_iterator<char>(in), {});
  return o;
}

// Every file and folder under `root` with its size and modification time: what "unchanged" compares.
std::map<std::string, std::string> snapshot(const fs::path& root) {
  std::map<std::string, std::string> s;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    struct stat st {};
    ::lstat(e.path().c_str(), &st);
    s[e.path().string()] = std::to_string(st.st_mode) + " " + std::to_string(st.st_size) + " " +
                           std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
  }
  return s;
}

void must(bool ok, const std::string& what) {
  if (!ok) {
    std::fprintf(stderr, "path_sweep: setup failed: %s\n", what.c_str());
    std::exit(1);
  }
}

struct Fixtures {
  fs::path dir, images, weights, checkpoint, plain, fifo, empty_dir, loop;
};

// Fixtures made with vitslim itself: vit_test weights, a training checkpoint, an image folder.
Fixtures make_fixtures(const std::string& bin, const fs::path& work, const fs::path& test_data) {
  Fixtures f;
  f.dir = work / "fixtures";
  f.images = f.dir / "images";
  for (int k = 0; k < kClasses; ++k) {
    fs::create_directories(f.images / ("class" + std::to_string(k)));
    fs::copy_file(test_data / "images" / "baseline.jpg", f.images / ("class" + std::to_string(k)) / "0.jpg");
  }
  f.weights = f.dir / "w.safetensors";
  const fs::path log = work / "setup.err";
  must(run(bin, {"export", "--model", "vit_test", "--format", "safetensors", "--out", f.weights}, work, log, 300)
               .status == 0,
       "export of vit_test weights");
  must(run(bin, {"train",     "--model",
                 "vit_test",  "--data-set",
                 "synthetic", "--calib-images",
                 "16",        "--batch-size",
                 "8",         "--remove-layers",
                 "1",         "--epochs",
                 "2",         "--decay-epochs",
                 "1",         "--warmup-epochs",
                 "0",         "--steps-per-epoch",
                 "1",         "--entropy-images",
                 "0",         "--threads",
                 "1",         "--quiet",
                 "--out-dir", (f.dir / "run").string()},
           work, log, 300)
               .status == 0,
       "a training run for a checkpoint");
  for (const auto& e : fs::directory_iterator(f.dir / "run" / "checkpoints")) {
    if (f.checkpoint.empty() || e.path() > f.checkpoint) f.checkpoint = e.path();  // the last: lambda 0
  }
  must(!f.checkpoint.empty(), "a training checkpoint");
  f.plain = f.dir / "plain.txt";
  std::ofstream(f.plain) << "a plain file, not a folder\n";
  const fs::path hostile = work / "hostile";
  fs::create_directories(hostile / "empty-folder");
  f.fifo = hostile / "fifo";
  f.empty_dir = hostile / "empty-folder";
  f.loop = hostile / "loop";
  must(::mkfifo(f.fifo.c_str(), 0644) == 0, "mkfifo");
  fs::create_symlink(f.loop.filename(), f.loop);  // loop -> loop
  return f;
}

// A short, valid run of each job with every output it can write (outputs relative: they land in
// the case's working directory).
std::map<std::string, Args> base_commands(const Fixtures& f) {
  const std::string img = f.images.string(), w = f.weights.string();
  const Args folder = {"--data-set", "folder", "--data-path", img, "--threads", "1", "--quiet"};
  auto with = [&](Args a, const Args& more) {
    a.insert(a.end(), more.begin(), more.end());
    return a;
  };
  return {
      {"entropy", with({"--model", "vit_test", "--calib-images", "8", "--batch-size", "8"},
                       with(folder, {"--out", "e.h5", "--json", "e.json"}))},
      {"search", with({"--model", "vit_test", "--calib-images", "8", "--batch-size", "8", "--ratio", "0.25"},
                      with(folder, {"--out", "s.h5", "--json", "s.json"}))},
      {"eval", with({"--weights", w}, with(folder, {"--json", "e.json"}))},
      {"predict",
       with({"--weights", w}, with(folder, {"--out", "p.csv", "--save-logits", "l.st", "--save-features", "f.st"}))},
      {"convert", {"--weights", w, "--out", "c.safetensors", "--quiet"}},
      {"export", {"--weights", w, "--out", "m.onnx", "--sample", "s.safetensors", "--quiet"}},
      {"bench",
       {"--model", "vit_test", "--iters", "1", "--warmup", "1", "--threads", "1", "--json", "b.json", "--quiet"}},
      {"tome-sweep",
       with({"--weights", w, "--eval-images", "10"}, with(folder, {"--json", "t.json", "--csv", "t.csv"}))},
      {"train", with({"--model", "vit_test", "--epochs", "1", "--warmup-epochs", "0", "--entropy-images", "0",
                      "--batch-size", "5"},
                     with(folder, {"--out-dir", "run"}))},
      {"merge", {"--checkpoint", f.checkpoint.string(), "--out", "m.safetensors", "--json", "m.json", "--quiet"}},
      {"bench-data", with({"--images", "8", "--rounds", "1"}, with(folder, {"--json", "b.json"}))},
      {"pipeline",
       {"--pretrain-epochs",
        "1",
        "--finetune-epochs",
        "2",
        "--decay-epochs",
        "1",
        "--ratios",
        "0.5",
        "--steps-per-epoch",
        "1",
        "--batch-size",
        "8",
        "--eval-images",
        "16",
        "--bench-iters",
        "1",
        "--threads",
        "1",
        "--quiet",
        "--out-dir",
        "run"}},
      {"plan", with({"--weights", w, "--max-drop", "100", "--calib-images", "5", "--batch-size", "5", "--probe-steps",
                     "1", "--probe-images", "5", "--rounds", "1"},
                    with(folder, {"--out-dir", "run"}))},
      {"make-shards", with({"--out", "shard-%d.tar"}, folder)},
      {"index", with({"--index", "i.bin"}, folder)},
  };
}

bool is_output(vitslim::PathRole r) { return r == vitslim::PathRole::OutputFile || r == vitslim::PathRole::OutputDir; }

struct PathOption {
  std::string flag;
  vitslim::PathRole role;
};

// The job's path options from its declarations, and --config (every job reads one).
std::vector<PathOption> path_options(const vitslim::Job& job) {
  vitslim::Config config;
  if (job.defaults) job.defaults(config);
  vitslim::Options options;
  job.declare(options, config);
  std::vector<PathOption> paths{{"config", vitslim::PathRole::InputFile}};
  for (const auto& o : options.all()) {
    if (o.role != vitslim::PathRole::None) paths.push_back({o.flag, o.role});
  }
  return paths;
}

// The value of --flag in args, or "".
std::string value_of(const Args& args, const std::string& flag) {
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == "--" + flag) return args[i + 1];
  }
  return "";
}

Args with_value(Args args, const std::string& flag, const std::string& value) {
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == "--" + flag) {
      args[i + 1] = value;
      return args;
    }
  }
  args.push_back("--" + flag);
  args.push_back(value);
  return args;
}

struct Case {
  std::string kind;   // "fifo", "folder", "plain file", "loop", "= --other"
  std::string value;  // what --flag is given
};

std::vector<Case> cases_for(const PathOption& p, const std::vector<PathOption>& all, const Args& base,
                            const Fixtures& f) {
  const bool folder_role = p.role == vitslim::PathRole::InputDir || p.role == vitslim::PathRole::OutputDir;
  std::vector<Case> cases = {{"fifo", f.fifo.string()},
                             folder_role ? Case{"plain file", f.plain.string()} : Case{"folder", f.empty_dir.string()},
                             {"loop", f.loop.string()}};
  for (const auto& q : all) {
    const std::string v = value_of(base, q.flag);
    if (q.flag == p.flag || v.empty()) continue;
    // An output may meet no other path; an input may meet no output (two inputs may be one file).
    if (is_output(p.role) || is_output(q.role)) cases.push_back({"= --" + q.flag, v});
  }
  return cases;
}

// The lines of stderr that are not [vitslim] log lines.
std::vector<std::string> error_lines(const std::string& err) {
  std::istringstream lines(err);
  std::vector<std::string> errors;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("[vitslim]", 0) != 0) errors.push_back(line);
  }
  return errors;
}

// One error line, starting "vitslim: error: ", naming the flag or the value.
std::string check_message(const std::string& err, const std::string& flag, const std::string& value) {
  const auto errors = error_lines(err);
  if (errors.size() != 1 || errors[0].rfind("vitslim: error: ", 0) != 0) return "expected one error line, got:\n" + err;
  const std::string& error = errors[0];
  if (error.find("--" + flag) == std::string::npos && error.find(value) == std::string::npos)
    return "the error names neither --" + flag + " nor " + value + ": " + error;
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s VITSLIM_BIN TEST_DATA_DIR [JOB...]\n", argv[0]);
    return 2;
  }
  const std::string bin = fs::absolute(argv[1]).string();
  const std::set<std::string> only(argv + 3, argv + argc);
  char pattern[] = "/tmp/vitslim-path-sweep-XXXXXX";
  must(::mkdtemp(pattern) != nullptr, "mkdtemp");
  const fs::path work = pattern;
  ::setenv("VITSLIM_CACHE_DIR", (work / "cache").c_str(), 1);  // the index cache stays in the sweep's folder
  const Fixtures f = make_fixtures(bin, work, argv[2]);
  const auto bases = base_commands(f);
  auto before = snapshot(work / "fixtures");
  int failures = 0, checks = 0;
  for (const auto& job : vitslim::jobs()) {
    if (!only.empty() && !only.count(job.name)) continue;
    const auto base = bases.find(job.name);
    if (base == bases.end()) {
      std::printf("FAIL %s: no base command in tests/e2e/path_sweep.cpp\n", job.name.c_str());
      ++failures;
      continue;
    }
    const auto all = path_options(job);
    for (const auto& p : all) {
      for (const Case& c : cases_for(p, all, base->second, f)) {
        Args args{job.name};
        const Args with = with_value(base->second, p.flag, c.value);
        args.insert(args.end(), with.begin(), with.end());
        const fs::path cwd = work / "case";
        fs::remove_all(cwd);
        fs::create_directories(cwd);
        const Outcome o = run(bin, args, cwd, work / "case.err", kCaseSeconds);
        std::string problem;
        if (o.timed_out) {
          problem = "still running after " + std::to_string(kCaseSeconds) + " s";
        } else if (o.status <= 0) {
          problem = o.status == 0 ? "exit 0: accepted" : "killed by a signal:\n" + o.err;
        } else if (problem = check_message(o.err, p.flag, c.value); problem.empty()) {
          if (!fs::is_empty(cwd))
            problem = "left " + fs::begin(fs::directory_iterator(cwd))->path().filename().string();
          else if (snapshot(work / "fixtures") != before)
            problem = "changed a fixture";
          else if (!fs::is_empty(f.empty_dir) || !fs::is_fifo(f.fifo))
            problem = "changed a hostile path";
        }
        ++checks;
        const std::string name = job.name + " --" + p.flag + " " + c.kind;
        if (problem.empty()) {
          std::printf("ok   %s: %s\n", name.c_str(), error_lines(o.err)[0].c_str() + 16);
        } else {
          std::printf("FAIL %s: %s\n", name.c_str(), problem.c_str());
          ++failures;
          before = snapshot(work / "fixtures");  // one changed fixture is one failure, not every one after it
        }
        std::fflush(stdout);
      }
    }
  }
  std::printf("path sweep: %d of %d cases ok\n", checks - failures, checks);
  if (failures == 0) fs::remove_all(work);
  return failures == 0 ? 0 : 1;
}
