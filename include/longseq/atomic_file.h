#pragma once
/// Crash-safe file replacement: a reader of `path` sees either the old file or the complete new
/// one, never a partial write, even if the writer is killed or the machine loses power.

#include <functional>
#include <ostream>
#include <string>

namespace longseq {

/// Writes `path` atomically. `write` fills a stream that goes to `path + ".tmp.<pid>"` in the same
/// directory; the temporary file is then flushed, fsync()ed, rename()d over `path`, and the
/// directory is fsync()ed so the rename itself is durable.
///
/// On any error (open, a failed write such as ENOSPC, fsync, rename, or an exception thrown by
/// `write`) the temporary file is removed, `path` is left as it was, and a c10::Error naming the
/// path and the errno text is thrown (an exception from `write` is rethrown unchanged).
///
/// The temporary name depends only on the process, so two threads of one process must not write
/// the same `path` at the same time (separate processes may; the last rename wins).
///
/// Cleanup policy: a writer that is killed (SIGKILL, power loss) cannot remove its temporary file,
/// so `path.tmp.<pid>` may remain. It is never read as a checkpoint; remove_stale_temp_files()
/// deletes such leftovers whose writer process no longer exists (call it at start-up, e.g. before
/// resuming from a checkpoint directory).
void write_file_atomic(const std::string& path, const std::function<void(std::ostream&)>& write);

/// Byte-buffer form of write_file_atomic().
void write_file_atomic(const std::string& path, const std::string& bytes);

/// The temporary name write_file_atomic() uses for `path` in this process.
std::string atomic_temp_path(const std::string& path);

/// Removes `path.tmp.<pid>` files left by write_file_atomic() in processes that no longer exist
/// (a temp file of a live process, possibly a concurrent writer, is kept). Returns how many were
/// removed. Errors while scanning are ignored: this is best-effort cleanup.
int remove_stale_temp_files(const std::string& path);

}  // namespace longseq
