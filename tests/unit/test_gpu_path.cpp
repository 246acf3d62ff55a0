// Unit tests of the GPU path's pieces that run without a GPU: choosing each rank's GPU and
// refusing shared ones (dist/gpu_select.h), the collective watchdog (dist/watchdog.h), and the
// device helpers' CPU behaviour (core/cuda_device.h), --device resolution, and the thread policy
// (core/threads.h), and rank 0's background writes (core/background.h). tests/gpu/ holds what
// needs a GPU.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/background.h"
#include "core/cuda_device.h"
#include "core/error.h"
#include "core/threads.h"
#include "dist/gpu_select.h"
#include "dist/mpi_session.h"
#include "dist/watchdog.h"

namespace dist = vitslim::dist;

namespace {
constexpr double kTimeout = 0.3, kPoll = 0.02;  // seconds
}  // namespace

TEST(GpuSelect, OneGpuPerLocalRank) {
  EXPECT_EQ(dist::choose_gpu_index(0, 8, 8, "node1"), 0);
  EXPECT_EQ(dist::choose_gpu_index(7, 8, 8, "node1"), 7);
  EXPECT_EQ(dist::choose_gpu_index(1, 2, 4, "node1"), 1);
  // Bound by the launcher (srun --gpus-per-task=1): every rank sees its own GPU as device 0.
  EXPECT_EQ(dist::choose_gpu_index(5, 8, 1, "node1"), 0);
}

TEST(GpuSelect, MoreRanksThanGpusIsRefused) {
  try {
    dist::choose_gpu_index(3, 4, 2, "node1");
    FAIL() << "4 ranks on 2 GPUs accepted";
  } catch (const vitslim::Error& e) {
    EXPECT_NE(std::string(e.what()).find("4 ranks on node1 but 2 visible GPUs"), std::string::npos) << e.what();
  }
  EXPECT_THROW(dist::choose_gpu_index(0, 1, 0, "node1"), vitslim::Error);
}

TEST(GpuSelect, SharedGpuIsRefusedNamingBothRanks) {
  EXPECT_NO_THROW(dist::check_distinct_gpus({"a 0000:1b:00.0", "a 0000:43:00.0", "b 0000:1b:00.0"}));
  try {
    dist::check_distinct_gpus({"a 0000:1b:00.0", "a 0000:43:00.0", "a 0000:1b:00.0"});
    FAIL() << "two ranks on one GPU accepted";
  } catch (const vitslim::CollectiveError& e) {
    EXPECT_NE(std::string(e.what()).find("ranks 0 and 2 share one GPU (a 0000:1b:00.0)"), std::string::npos)
        << e.what();
  }
}

// The watchdog's tests drive its clock by hand: an item times out when the test moves the clock
// past the timeout, not when the machine happens to be slow, so no real time is measured or
// compared. They only wait (polls of real time, a hang guard) for the watchdog thread to have
// looked again after each move.
class FakeClock {
 public:
  dist::Watchdog::Now now() {
    return [this] { return seconds_.load(); };
  }
  void set(double seconds) { seconds_ = seconds; }

 private:
  std::atomic<double> seconds_{0};
};

// Waits until `dog` has polled `more` more times (a hang guard of 10,000 real polls).
void wait_for_polls(const dist::Watchdog& dog, uint64_t more) {
  const uint64_t target = dog.polls() + more;
  for (int k = 0; k < 10000 && dog.polls() < target && !dog.fired(); ++k) {
    std::this_thread::sleep_for(std::chrono::duration<double>(kPoll));
  }
}

TEST(Watchdog, FinishedWorkNeverFires) {
  FakeClock clock;
  std::atomic<int> fired{0};
  dist::Watchdog dog(
      kTimeout, [&](const std::string&, double) { ++fired; }, kPoll, clock.now());
  for (int k = 0; k < 10; ++k) dog.watch("done", [] { return true; });
  std::atomic<bool> later{false};
  dog.watch("finishes in time", [&] { return later.load(); });
  clock.set(kTimeout / 3);
  wait_for_polls(dog, 2);
  EXPECT_EQ(dog.pending(), 1u);  // the finished ten are dropped, the late one is still watched
  later = true;
  clock.set(kTimeout * 10);
  wait_for_polls(dog, 2);
  EXPECT_EQ(fired.load(), 0);
  EXPECT_EQ(dog.pending(), 0u);
  EXPECT_FALSE(dog.fired());
}

TEST(Watchdog, HungWorkFiresOnceNamingIt) {
  FakeClock clock;
  std::mutex mutex;
  std::string what;
  double seconds = 0;
  std::atomic<int> fired{0};
  dist::Watchdog dog(
      kTimeout,
      [&](const std::string& w, double s) {
        std::lock_guard<std::mutex> lock(mutex);
        what = w;
        seconds = s;
        ++fired;
      },
      kPoll, clock.now());
  dog.watch("ok", [] { return true; });
  dog.watch("all-reduce of 4096 bytes at global step 12", [] { return false; });
  clock.set(kTimeout / 3);
  dog.watch("another hung one", [] { return false; });
  clock.set(kTimeout * 0.9);  // just short of the timeout
  wait_for_polls(dog, 2);
  EXPECT_FALSE(dog.fired()) << "fired before its clock reached the timeout";
  clock.set(kTimeout + 2);  // the oldest item is now kTimeout + 2 s old
  wait_for_polls(dog, 2);
  std::lock_guard<std::mutex> lock(mutex);
  EXPECT_EQ(fired.load(), 1);
  EXPECT_EQ(what, "all-reduce of 4096 bytes at global step 12");
  EXPECT_DOUBLE_EQ(seconds, kTimeout + 2);
  dog.watch("after firing", [] { return false; });  // ignored: the handler already ran
  EXPECT_EQ(dog.pending(), 0u);
}

TEST(CudaDevice, CpuTensorsStayWhereTheyAre) {
  const auto t = torch::arange(6).view({2, 3});
  const auto same = vitslim::cuda::to_device(t, torch::Device(torch::kCPU));
  EXPECT_EQ(same.data_ptr(), t.data_ptr());
  if (!vitslim::cuda::built_with_cuda()) {
    EXPECT_EQ(vitslim::cuda::device_count(), 0);
    EXPECT_THROW(vitslim::cuda::set_device(0), vitslim::Error);
  }
}

// --device cuda where it cannot run: one line naming the flag and what was found.
TEST(CudaDevice, UnavailableReasonNamesWhatWasFound) {
  using vitslim::cuda::cuda_unavailable_reason;
  EXPECT_NE(cuda_unavailable_reason(false, 0, nullptr).find("--device cuda: this vitslim is built against a CPU"),
            std::string::npos);
  EXPECT_NE(cuda_unavailable_reason(true, 0, "").find("CUDA_VISIBLE_DEVICES is set and empty"), std::string::npos);
  EXPECT_NE(cuda_unavailable_reason(true, 0, "3").find("no CUDA device is visible (CUDA_VISIBLE_DEVICES=3"),
            std::string::npos);
  EXPECT_NE(cuda_unavailable_reason(true, 0, nullptr).find("CUDA_VISIBLE_DEVICES unset"), std::string::npos);
  EXPECT_EQ(cuda_unavailable_reason(true, 2, ""), "");  // devices seen: nothing to say
  // auto never throws; it is the CPU where no device is visible, and cpu is always the CPU.
  EXPECT_EQ(vitslim::cuda::resolve_device(vitslim::Device::Cpu), vitslim::Device::Cpu);
  if (vitslim::cuda::device_count() == 0) {
    EXPECT_EQ(vitslim::cuda::resolve_device(vitslim::Device::Auto), vitslim::Device::Cpu);
    EXPECT_THROW(vitslim::cuda::resolve_device(vitslim::Device::Cuda), vitslim::Error);
  }
}

// Ranks bound to their own cores (srun --cpus-per-task, mpirun --bind-to core) keep them all;
// ranks that see the same cores share them.
TEST(Threads, CoresAreDividedOnlyAmongRanksThatShareThem) {
  EXPECT_TRUE(vitslim::masks_overlap("0-7", "7-15"));
  EXPECT_FALSE(vitslim::masks_overlap("0-7", "8-15"));
  EXPECT_FALSE(vitslim::masks_overlap("0,2,4", "1,3,5"));
  EXPECT_TRUE(vitslim::masks_overlap("", "1"));  // unknown: shared
  const std::vector<std::string> bound = {"n1 0-7", "n1 8-15", "n2 0-7", "n2 8-15"};
  EXPECT_EQ(dist::sharing_ranks(bound, 1), 1);
  const std::vector<std::string> unbound = {"n1 0-15", "n1 0-15", "n2 0-15"};
  EXPECT_EQ(dist::sharing_ranks(unbound, 0), 2);
  EXPECT_EQ(dist::sharing_ranks(unbound, 2), 1);
  // Loader threads: a GPU rank's cores less the main thread; on the CPU what compute leaves.
  EXPECT_EQ(vitslim::default_loader_threads(8, 8, true), 7);
  EXPECT_EQ(vitslim::default_loader_threads(64, 1, true), 16);
  EXPECT_EQ(vitslim::default_loader_threads(1, 1, true), 1);
  EXPECT_EQ(vitslim::default_loader_threads(2, 2, false), 0);
  EXPECT_EQ(vitslim::default_loader_threads(4, 2, false), 2);
  EXPECT_EQ(vitslim::default_loader_threads(16, 8, false), 4);
}

// Rank 0's background writes: one at a time, in order, and an error comes back on the next call.
TEST(BackgroundTask, RunsInOrderAndRethrows) {
  vitslim::BackgroundTask task;
  std::vector<int> order;
  task.run([&] { order.push_back(1); });
  task.run([&] { order.push_back(2); });
  task.finish();
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  task.run([] { throw vitslim::Error("disk full"); });
  while (task.pending() > 0) std::this_thread::yield();
  EXPECT_THROW(task.run([&] { order.push_back(3); }), vitslim::Error);  // the error, not the next task
  task.finish();                                                        // rethrown once only
  EXPECT_EQ(order.size(), 2u);
  task.run([&] { order.push_back(4); });
  task.finish();
  EXPECT_EQ(order.back(), 4);
  EXPECT_EQ(task.pending(), 0u);
}

// An epoch's end queues its export and its checkpoint without waiting for the file system; a third
// write waits for room; the writes queued after a failed one are dropped.
TEST(BackgroundTask, QueuesUpToItsCapacityAndDropsWritesAfterAnError) {
  std::promise<void> open_gate;
  std::shared_future<void> gate = open_gate.get_future().share();
  std::vector<int> order;
  std::atomic<bool> third_queued{false};
  {
    vitslim::BackgroundTask task(2);
    task.run([&, gate] {
      gate.wait();
      order.push_back(1);
    });
    task.run([&] { order.push_back(2); });  // returns while the first still runs
    EXPECT_EQ(task.pending(), 2u);
    std::thread third([&] {
      task.run([&] { order.push_back(3); });
      third_queued = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_FALSE(third_queued.load());  // no room until the first finishes
    open_gate.set_value();
    third.join();
    task.finish();
    EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
  }
  std::promise<void> open_second;
  std::shared_future<void> second = open_second.get_future().share();
  vitslim::BackgroundTask task(2);
  task.run([second] {
    second.wait();
    throw vitslim::Error("disk full");
  });
  task.run([&] { order.push_back(4); });
  open_second.set_value();
  EXPECT_THROW(task.finish(), vitslim::Error);
  EXPECT_EQ(order.back(), 3);  // the write after the failure never ran
  EXPECT_EQ(task.pending(), 0u);
}
