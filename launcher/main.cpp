// `vitslim-launch`: runs a vitslim job described by an INI run description (run_description.h)
// here under mpiexec, or writes sbatch scripts from the slurm/ templates and submits them (job
// arrays for ratio sweeps; search -> train -> merge + eval chained with afterok dependencies).
// --dry-run prints what would run or be submitted and changes nothing.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/atomic_file.h"
#include "core/error.h"
#include "run_description.h"
#include "script.h"

namespace {

namespace fs = std::filesystem;
using vitslim::Error;
using vitslim::launch::RunDescription;

constexpr int kExitBadInput = 2;

struct Args {
  bool dry_run = false;
  std::string templates = VITSLIM_SLURM_DIR;
  std::string file;
};

void usage(FILE* out) {
  std::fprintf(out,
               "usage: vitslim-launch [--dry-run] [--templates DIR] RUN.ini\n\n"
               "Runs the vitslim job a run description names: here (mode = local: mpiexec -np N) or on\n"
               "Slurm (mode = sbatch: scripts from %s, srun --mpi=pmix, requeue before the time\n"
               "limit, job arrays over [sweep] ratios, job = chain for search -> train -> merge + eval).\n"
               "  --dry-run        print the command or the scripts and sbatch calls; run nothing\n"
               "  --templates DIR  sbatch templates (default: the source tree's slurm/)\n"
               "jobs: %s, chain\n",
               VITSLIM_SLURM_DIR, vitslim::launch::launchable_list().c_str());
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--dry-run")
      a.dry_run = true;
    else if (arg == "--templates" && i + 1 < argc)
      a.templates = argv[++i];
    else if (arg == "--help" || arg == "-h") {
      usage(stdout);
      std::exit(0);
    } else if (!arg.empty() && arg[0] == '-')
      throw Error(vitslim::cat("unknown option '", arg, "'"));
    else if (a.file.empty())
      a.file = arg;
    else
      throw Error("one run description only");
  }
  if (a.file.empty()) throw Error("no run description given (vitslim-launch --help)");
  return a;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(vitslim::cat("template ", path, ": cannot open"));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs `command` through /bin/sh; returns its stdout, throws with its exit status on failure.
std::string capture(const std::string& command) {
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) throw Error(vitslim::cat("cannot run: ", command));
  std::string out;
  char buffer[256];
  while (fgets(buffer, sizeof(buffer), pipe)) out += buffer;
  const int status = pclose(pipe);
  if (status != 0) throw Error(vitslim::cat("'", command, "' failed (status ", WEXITSTATUS(status), "): ", out));
  return out;
}

int run_local(const RunDescription& d, bool dry_run) {
  const std::string command = vitslim::launch::local_command(d);
  std::printf("%s\n", command.c_str());
  if (dry_run) return 0;
  fs::create_directories(d.output_dir);
  std::fflush(stdout);
  execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
  throw Error(vitslim::cat("cannot start /bin/sh for: ", command));
}

int submit(const RunDescription& d, const Args& a) {
  const std::string text = read_text((fs::path(a.templates) / "vitslim.sbatch.in").string());
  const std::vector<std::string> stages =
      d.job == "chain" ? std::vector<std::string>{"search", "train", "merge-eval"} : std::vector<std::string>{d.job};
  if (!a.dry_run) fs::create_directories(d.output_dir);
  std::string previous;
  for (const auto& stage : stages) {
    const std::string script = vitslim::launch::render_sbatch(d, stage, text);
    const std::string path = (fs::path(d.output_dir) / (d.name + "-" + stage + ".sbatch")).string();
    std::string command = "sbatch --parsable";
    if (!previous.empty()) command += " --dependency=afterok:" + previous;
    command += " " + vitslim::launch::shell_quote(path);
    if (a.dry_run) {
      std::printf("# ---- %s ----\n%s\n# submit: %s\n", path.c_str(), script.c_str(), command.c_str());
      previous = "<" + stage + " job id>";
      continue;
    }
    vitslim::write_file_atomic(path, script);
    std::string id = capture(command);
    id = id.substr(0, id.find_first_of(";\n"));  // --parsable: "id" or "id;cluster"
    std::printf("submitted %s: job %s (%s)\n", stage.c_str(), id.c_str(), path.c_str());
    previous = id;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    const RunDescription d = vitslim::launch::read_run_description(a.file);
    return d.mode == "local" ? run_local(d, a.dry_run) : submit(d, a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vitslim-launch: error: %s\n", vitslim::first_line(e.what()).c_str());
    return kExitBadInput;
  }
}
