#include <elfutils/libdwfl.h>
#include <elfutils/libdw.h>
#include <dwarf.h>
