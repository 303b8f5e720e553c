// A C++ method in a namespace, for demangling: one thread parks in
// fixture::Parker<int>::park(int) (nanosleep under it); main reads stdin
// until EOF. Build: c++ -O1 -g -pthread parked_cpp.cpp
#include "fixture_ready.h"
#include <thread>

namespace fixture {
template <typename T>
class Parker {
  public:
    __attribute__((noinline)) void park(T seconds) {
        struct timespec time = {static_cast<time_t>(seconds), 0};
        for (;;) nanosleep(&time, nullptr);
    }
};
}  // namespace fixture

int main() {
    std::thread thread([] {
        announce(SYS_CLOCK_NANOSLEEP, SYS_NANOSLEEP, SYS_CLOCK_NANOSLEEP);
        fixture::Parker<int>().park(100000);
    });
    wait_until_parked(1);
    char byte;
    while (read(0, &byte, 1) > 0) {}
    _exit(0);
}
