// The DWARF of an ELF file opened for its type and variable entries alone (Go's
// runtime layout). libdw's dwarf_begin inflates every compressed debug section
// of a file when it opens it: of a Go binary's 2 MB of zlib (line tables,
// location and range lists, frames) that was 28 ms of each `dump --goroutines`,
// of which .debug_info and .debug_abbrev are a third. The file is mapped
// privately (copy on write: the file is never changed) and the sections the
// layout does not read are renamed in that copy of the section name table, so
// libdw does not know them and leaves them compressed.
#include "cswiftprof.h"
#include <elfutils/libdw.h>
#include <gelf.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

/* Debug sections the type and variable entries never point into. */
static const char *const unread_sections[] = {
    "line", "loc", "loclists", "ranges", "rnglists", "frame", "aranges",
    "pubnames", "pubtypes", "gnu_pubnames", "gnu_pubtypes", "macro", "macinfo", "gdb_scripts", NULL,
};

static int is_unread(const char *name, size_t length) {
    const char *base;
    if (length > 7 && memcmp(name, ".debug_", 7) == 0) base = name + 7;
    else if (length > 8 && memcmp(name, ".zdebug_", 8) == 0) base = name + 8;
    else return 0;
    for (const char *const *unread = unread_sections; *unread; unread++)
        if (strcmp(base, *unread) == 0) return 1;
    return 0;
}

/* Renames the unread debug sections in the private image; every offset is checked
 * against the file (the target's binary is not trusted). */
static void hide_unread_sections(char *image, size_t size) {
    Elf *probe = elf_memory(image, size);
    if (!probe) return;
    size_t names_index;
    GElf_Shdr names;
    Elf_Scn *names_section;
    if (elf_kind(probe) == ELF_K_ELF && elf_getshdrstrndx(probe, &names_index) == 0 &&
        (names_section = elf_getscn(probe, names_index)) && gelf_getshdr(names_section, &names) &&
        names.sh_type != SHT_NOBITS && names.sh_offset <= size && names.sh_size <= size - names.sh_offset) {
        char *table = image + names.sh_offset;
        for (Elf_Scn *section = NULL; (section = elf_nextscn(probe, section));) {
            GElf_Shdr header;
            if (!gelf_getshdr(section, &header) || header.sh_name >= names.sh_size) continue;
            char *name = table + header.sh_name;
            size_t room = names.sh_size - header.sh_name, length = strnlen(name, room);
            if (length < room && is_unread(name, length)) name[0] = '_';
        }
    }
    elf_end(probe);
}

int sp_type_dwarf_open(int fd, sp_type_dwarf *out) {
    memset(out, 0, sizeof *out);
    sp_elf_library_ready();
    struct stat info;
    if (fstat(fd, &info) != 0 || info.st_size <= 0) return -1;
    size_t size = (size_t)info.st_size;
    char *image = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (image == MAP_FAILED) return -1;
    hide_unread_sections(image, size);
    Elf *elf = elf_memory(image, size);
    Dwarf *dwarf = elf ? dwarf_begin_elf(elf, DWARF_C_READ, NULL) : NULL;
    if (!dwarf) {
        if (elf) elf_end(elf);
        munmap(image, size);
        return -1;
    }
    out->image = image;
    out->size = size;
    out->elf = elf;
    out->dwarf = dwarf;
    return 0;
}

void sp_type_dwarf_close(sp_type_dwarf *handle) {
    if (handle->dwarf) dwarf_end(handle->dwarf);
    if (handle->elf) elf_end(handle->elf);
    if (handle->image) munmap(handle->image, handle->size);
    memset(handle, 0, sizeof *handle);
}
