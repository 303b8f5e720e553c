// A C++ frame with a long name, as template-heavy code has: one thread parks in
// fixture::Registry<std::map<std::string, std::vector<std::pair<long, double>>>>::
// wait_for_changes(...) (nanosleep under it), called from short-named functions;
// main reads stdin until EOF. Build: c++ -O1 -g -pthread long_name.cpp
#include "fixture_ready.h"
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace fixture {
template <typename Index>
class Registry {
  public:
    template <typename Clock>
    __attribute__((noinline)) void wait_for_changes(const Index &, Clock seconds) {
        struct timespec time = {static_cast<time_t>(seconds), 0};
        for (;;) nanosleep(&time, nullptr);
    }
};
}  // namespace fixture

using Index = std::map<std::string, std::vector<std::pair<long, double>>>;

__attribute__((noinline)) static void watch(const Index &index) {
    fixture::Registry<Index>().wait_for_changes(index, 100000L);
}

__attribute__((noinline)) static void run(const Index &index) { watch(index); }

int main() {
    Index index;
    std::thread thread([&index] {
        announce(SYS_CLOCK_NANOSLEEP, SYS_NANOSLEEP, SYS_CLOCK_NANOSLEEP);
        run(index);
    });
    wait_until_parked(1);
    char byte;
    while (read(0, &byte, 1) > 0) {}
    _exit(0);
}
