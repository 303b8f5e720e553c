// Core files: the program headers and notes of an ELF core, read by libelf
// (which checks every offset and size against the file), and the compressed
// cores systemd-coredump writes (zstd, xz, lz4), inflated into memory by their
// own libraries.
#define _GNU_SOURCE
#include "cswiftprof.h"
#include <errno.h>
#include <gelf.h>
#include <lz4frame.h>
#include <lzma.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zstd.h>

void sp_core_headers_free(sp_core_headers *headers) {
    free(headers->segments);
    free(headers->notes);
    memset(headers, 0, sizeof *headers);
}

static int append_note(sp_core_headers *out, size_t *capacity, const sp_core_note *note) {
    if (out->note_count == *capacity) {
        size_t grown = *capacity ? *capacity * 2 : 64;
        sp_core_note *notes = realloc(out->notes, grown * sizeof *notes);
        if (!notes) return -1;
        out->notes = notes;
        *capacity = grown;
    }
    out->notes[out->note_count++] = *note;
    return 0;
}

int sp_core_read_headers(const void *data, size_t size, sp_core_headers *out) {
    memset(out, 0, sizeof *out);
    // Checked before libelf sees the bytes: it would convert another byte order in
    // place, and the bytes are a read-only mapping.
    const unsigned char *ident = data;
    if (size < EI_NIDENT || memcmp(ident, ELFMAG, SELFMAG) != 0) return SP_CORE_NOT_ELF;
    if (ident[EI_CLASS] != ELFCLASS64 || ident[EI_DATA] != ELFDATA2LSB) return SP_CORE_OTHER_ARCHITECTURE;
    sp_elf_library_ready();
    Elf *elf = elf_memory((char *)data, size);
    int rc = SP_CORE_TRUNCATED;
    GElf_Ehdr header;
    size_t segment_count = 0, capacity = 0;
    if (!elf || elf_kind(elf) != ELF_K_ELF || !gelf_getehdr(elf, &header)) goto done;
    out->type = header.e_type;
    out->machine = header.e_machine;
    if (header.e_type != ET_CORE) { rc = SP_CORE_NOT_CORE; goto done; }
    if (header.e_machine != EM_X86_64) { rc = SP_CORE_OTHER_ARCHITECTURE; goto done; }
    if (elf_getphdrnum(elf, &segment_count) != 0) goto done;
    // A table past the end reads as no segments at all: a core cut short.
    // (libelf reports no segments for a table it cannot read: the header's count is checked.)
    size_t declared = header.e_phnum == PN_XNUM ? segment_count : header.e_phnum;
    if (header.e_phoff > size || declared > (size - header.e_phoff) / sizeof(Elf64_Phdr)) goto done;
    out->segments = calloc(segment_count ? segment_count : 1, sizeof *out->segments);
    if (!out->segments) goto done;
    for (size_t i = 0; i < segment_count; i++) {
        GElf_Phdr segment;
        if (!gelf_getphdr(elf, (int)i, &segment)) goto done;
        out->segments[out->segment_count++] = (sp_core_segment){segment.p_type, segment.p_flags, segment.p_offset,
                                                                segment.p_vaddr, segment.p_filesz, segment.p_memsz};
        if (segment.p_type != PT_NOTE) continue;
        if (segment.p_offset > size || segment.p_filesz > size - segment.p_offset) goto done;
        Elf_Data *notes = elf_getdata_rawchunk(elf, (int64_t)segment.p_offset, segment.p_filesz, ELF_T_NHDR);
        if (!notes) goto done;
        size_t offset = 0, name_offset, desc_offset;
        GElf_Nhdr note;
        while (offset < notes->d_size && (offset = gelf_getnote(notes, offset, &note, &name_offset, &desc_offset)) > 0) {
            sp_core_note entry = {note.n_type, {0}, segment.p_offset + desc_offset, note.n_descsz};
            size_t name_length = note.n_namesz < sizeof entry.name ? note.n_namesz : sizeof entry.name - 1;
            memcpy(entry.name, (const char *)notes->d_buf + name_offset, name_length);
            if (append_note(out, &capacity, &entry) != 0) goto done;
        }
    }
    rc = 0;
done:
    if (rc != 0) sp_core_headers_free(out);
    if (elf) elf_end(elf);
    return rc;
}

// The inflated bytes grow in an anonymous mapping (mremap moves it as it grows, no copy).
typedef struct {
    unsigned char *bytes;
    size_t size, capacity, limit;
} inflated_buffer;

static int reserve(inflated_buffer *buffer, size_t wanted) {
    if (buffer->capacity - buffer->size >= wanted) return 0;
    size_t capacity = buffer->capacity ? buffer->capacity : 1 << 24;
    while (capacity - buffer->size < wanted) capacity *= 2;
    if (capacity > buffer->limit) {
        if (buffer->size + wanted > buffer->limit) return SP_CORE_TOO_LARGE;
        capacity = buffer->limit;
    }
    void *grown = buffer->bytes ? mremap(buffer->bytes, buffer->capacity, capacity, MREMAP_MAYMOVE)
                                : mmap(NULL, capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (grown == MAP_FAILED) return SP_CORE_TOO_LARGE;
    buffer->bytes = grown;
    buffer->capacity = capacity;
    return 0;
}

static const size_t chunk = 1 << 20;

// Appends `length` inflated bytes from `window`: a core is mostly pages of zeros
// (stacks reserved, never touched), and the mapping's pages read as zero until
// written, so only the 4 KiB pieces that hold something are copied (and take memory).
static int emit(inflated_buffer *out, const unsigned char *window, size_t length) {
    int rc = reserve(out, length);
    if (rc != 0) return rc;
    static const unsigned char zeros[4096];
    for (size_t at = 0; at < length; at += sizeof zeros) {
        size_t piece = length - at < sizeof zeros ? length - at : sizeof zeros;
        if (memcmp(window + at, zeros, piece) != 0) memcpy(out->bytes + out->size + at, window + at, piece);
    }
    out->size += length;
    return 0;
}

static int inflate_zstd(const unsigned char *input, size_t size, inflated_buffer *out, unsigned char *window) {
    ZSTD_DStream *stream = ZSTD_createDStream();
    if (!stream) return SP_CORE_CORRUPT;
    ZSTD_inBuffer in = {input, size, 0};
    size_t last = 1;
    int rc = 0;
    while (rc == 0 && (in.pos < in.size || last != 0)) {
        ZSTD_outBuffer piece = {window, chunk, 0};
        size_t before = in.pos;
        last = ZSTD_decompressStream(stream, &piece, &in);
        if (ZSTD_isError(last)) rc = SP_CORE_CORRUPT;
        else if ((rc = emit(out, window, piece.pos)) != 0) break;
        // No input taken and none made: the stream ends before its frame does.
        else if (in.pos == in.size && last != 0 && piece.pos == 0 && before == in.pos) rc = SP_CORE_TRUNCATED;
    }
    ZSTD_freeDStream(stream);
    return rc;
}

static int inflate_xz(const unsigned char *input, size_t size, inflated_buffer *out, unsigned char *window) {
    lzma_stream stream = LZMA_STREAM_INIT;
    if (lzma_stream_decoder(&stream, UINT64_MAX, LZMA_CONCATENATED) != LZMA_OK) return SP_CORE_CORRUPT;
    stream.next_in = input;
    stream.avail_in = size;
    int rc = 0;
    for (;;) {
        stream.next_out = window;
        stream.avail_out = chunk;
        lzma_ret ret = lzma_code(&stream, LZMA_FINISH);
        if ((rc = emit(out, window, chunk - stream.avail_out)) != 0) break;
        if (ret == LZMA_STREAM_END) break;
        if (ret == LZMA_BUF_ERROR) { rc = SP_CORE_TRUNCATED; break; }
        if (ret != LZMA_OK) { rc = SP_CORE_CORRUPT; break; }
    }
    lzma_end(&stream);
    return rc;
}

static int inflate_lz4(const unsigned char *input, size_t size, inflated_buffer *out, unsigned char *window) {
    LZ4F_dctx *context;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&context, LZ4F_VERSION))) return SP_CORE_CORRUPT;
    size_t position = 0, hint = 1;
    int rc = 0;
    while (hint != 0) {
        if (position == size) { rc = SP_CORE_TRUNCATED; break; }
        size_t produced = chunk, consumed = size - position;
        hint = LZ4F_decompress(context, window, &produced, input + position, &consumed, NULL);
        if (LZ4F_isError(hint)) { rc = SP_CORE_CORRUPT; break; }
        position += consumed;
        if ((rc = emit(out, window, produced)) != 0) break;
    }
    LZ4F_freeDecompressionContext(context);
    return rc;
}

int sp_core_compression(const void *data, size_t size) {
    const unsigned char *b = data;
    if (size >= 4 && b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd) return SP_CORE_ZSTD;
    if (size >= 6 && memcmp(b, "\xfd" "7zXZ\0", 6) == 0) return SP_CORE_XZ;
    if (size >= 4 && b[0] == 0x04 && b[1] == 0x22 && b[2] == 0x4d && b[3] == 0x18) return SP_CORE_LZ4;
    return 0;
}

int sp_core_inflate(const void *data, size_t size, size_t limit, void **bytes, size_t *inflated_size) {
    inflated_buffer out = {NULL, 0, 0, limit};
    unsigned char *window = malloc(chunk);
    if (!window) return SP_CORE_TOO_LARGE;
    int rc;
    switch (sp_core_compression(data, size)) {
    case SP_CORE_ZSTD: rc = inflate_zstd(data, size, &out, window); break;
    case SP_CORE_XZ: rc = inflate_xz(data, size, &out, window); break;
    case SP_CORE_LZ4: rc = inflate_lz4(data, size, &out, window); break;
    default: rc = SP_CORE_NOT_ELF; break;
    }
    free(window);
    if (rc != 0 || out.size == 0) {
        if (out.bytes) munmap(out.bytes, out.capacity);
        return rc != 0 ? rc : SP_CORE_TRUNCATED;
    }
    // Read-only from here on, as a mapped file is; the tail past the bytes is given back.
    size_t page = (size_t)sysconf(_SC_PAGESIZE), used = (out.size + page - 1) / page * page;
    if (used < out.capacity) munmap(out.bytes + used, out.capacity - used);
    mprotect(out.bytes, used, PROT_READ);
    *bytes = out.bytes;
    *inflated_size = out.size;
    return 0;
}

void sp_core_inflated_free(void *bytes, size_t size) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    munmap(bytes, (size + page - 1) / page * page);
}

int sp_memory_file(const void *bytes, size_t size) {
    int fd = memfd_create("swiftprof-vdso", MFD_CLOEXEC);
    if (fd < 0) return -1;
    const char *at = bytes;
    while (size > 0) {
        ssize_t n = write(fd, at, size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) { close(fd); return -1; }
        at += n;
        size -= (size_t)n;
    }
    return fd;
}
