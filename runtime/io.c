/* io.c — output files are written whole or not at all, and only over regular files.
 *
 * A file is written to a temporary file in the same folder, flushed, fsynced and renamed over
 * its name (then the folder is fsynced), so a failure or a crash leaves the previous file as
 * it was. Renaming replaces whatever has the name, so the name is checked first: a FIFO, a
 * device (taskgrad ... --graph /dev/null, as root), a folder or a dangling link is refused,
 * and a symbolic link is followed to the regular file it names (the link stays a link). */
#include "tg_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *tg_file_kind(mode_t m)
{
	return S_ISDIR(m) ? "a folder" : S_ISFIFO(m) ? "a FIFO" : S_ISCHR(m) ? "a character device"
	       : S_ISBLK(m) ? "a block device" : S_ISSOCK(m) ? "a socket" : "not a regular file";
}

/* The file that writing path replaces (path, or the regular file its link names), its folder,
 * and, when it replaces a file, that file's permission bits (never its set-id bits): the new
 * file gets them; a file that replaces nothing gets 0666 less the umask, from the kernel. */
typedef struct output_target {
	char *file;
	char *dir;
	int replaces;
	mode_t perm;
} output_target;

static void target_free(output_target *t)
{
	free(t->file);
	free(t->dir);
	t->file = t->dir = NULL;
}

static int resolve_target(const char *path, output_target *t)
{
	memset(t, 0, sizeof *t);
	TG_CHECK(path && *path, TG_EINVAL, "no output file name given");
	size_t len = strlen(path);
	TG_CHECK(path[len - 1] != '/', TG_EINVAL, "cannot write '%s': the name ends in '/' (a folder, not a file)",
	         TG_SHOWN(path));
	struct stat st;
	if (lstat(path, &st) != 0) {
		TG_CHECK(errno == ENOENT, TG_EIO, "cannot write '%s': %s", TG_SHOWN(path), strerror(errno));
		t->file = strdup(path);
	} else if (S_ISLNK(st.st_mode)) {
		char *real = realpath(path, NULL);
		TG_CHECK(real, TG_EIO, "cannot write '%s': it is a symbolic link to nothing usable (%s)", TG_SHOWN(path),
		         strerror(errno));
		if (stat(real, &st) != 0 || !S_ISREG(st.st_mode)) {
			int code = tg_error(TG_EIO, "will not write '%s': it is a symbolic link to '%s', which is %s; outputs "
			                    "replace regular files only", TG_SHOWN(path), TG_SHOWN(real),
			                    tg_file_kind(st.st_mode));
			free(real);
			return code;
		}
		t->file = real;
		t->replaces = 1;
		t->perm = st.st_mode & 0777;
	} else {
		TG_CHECK(S_ISREG(st.st_mode), TG_EIO,
		         "will not write '%s': it is %s, and outputs replace regular files only", TG_SHOWN(path),
		         tg_file_kind(st.st_mode));
		t->file = strdup(path);
		t->replaces = 1;
		t->perm = st.st_mode & 0777;
	}
	TG_CHECK(t->file, TG_ENOMEM, "out of memory");
	const char *slash = strrchr(t->file, '/');
	t->dir = slash == t->file ? strdup("/") : slash ? strndup(t->file, (size_t)(slash - t->file)) : strdup(".");
	if (!t->dir) {
		target_free(t);
		return tg_error(TG_ENOMEM, "out of memory");
	}
	int rc = 0;
	if (stat(t->dir, &st) != 0)
		rc = tg_error(TG_EIO, "cannot write '%s': folder '%s' %s", TG_SHOWN(path), TG_SHOWN(t->dir),
		              errno == ENOENT ? "does not exist" : strerror(errno));
	else if (!S_ISDIR(st.st_mode))
		rc = tg_error(TG_EIO, "cannot write '%s': '%s' is not a folder", TG_SHOWN(path), TG_SHOWN(t->dir));
	else if (access(t->dir, W_OK | X_OK) != 0)
		rc = tg_error(TG_EIO, "cannot write '%s': folder '%s' is not writable (%s)", TG_SHOWN(path), TG_SHOWN(t->dir),
		              strerror(errno));
	if (rc < 0)
		target_free(t);
	return rc;
}

/* Random letters and digits for temporary names. */
static void random_name(char *out, size_t n)
{
	static const char set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	static _Atomic uint64_t counter;
	unsigned char r[16];
	if (n > sizeof r)
		n = sizeof r;
	if (getrandom(r, n, GRND_NONBLOCK) != (ssize_t)n) {
		/* no entropy to be had: a counter mixed with the time and the process (the name is
		 * only ever created with O_EXCL, so a guess costs a retry, nothing more) */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t x = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40) ^ ++counter;
		for (size_t i = 0; i < n; i++) {
			x ^= x >> 33;
			x *= 0xff51afd7ed558ccdULL;
			x ^= x >> 29;
			r[i] = (unsigned char)x;
		}
	}
	for (size_t i = 0; i < n; i++)
		out[i] = set[r[i] % (sizeof set - 1)];
}

/* A new temporary file in t's folder; its name goes to *tmp (malloc'd). It is created with
 * O_EXCL under a random name, so that the kernel applies the process's umask (the umask is
 * never read: reading it means setting it, which races with every other thread's new files).
 * When it replaces a file, it is created with that file's bits (less the umask: never more
 * open than the old file) and then given them exactly. */
static int open_temp(const char *path, const output_target *t, char **tmp)
{
	size_t n = strlen(t->dir) + 32;
	*tmp = malloc(n);
	TG_CHECK(*tmp, TG_ENOMEM, "out of memory");
	int fd = -1, e = EEXIST;
	for (int attempt = 0; attempt < 100 && fd < 0 && e == EEXIST; attempt++) {
		char name[7];
		random_name(name, 6);
		name[6] = '\0';
		snprintf(*tmp, n, "%s/.taskgrad-%s.tmp", t->dir, name);
		fd = open(*tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, t->replaces ? t->perm : 0666);
		e = fd < 0 ? errno : 0;
	}
	if (fd < 0) {
		free(*tmp);
		*tmp = NULL;
		return tg_error(TG_EIO, "cannot write '%s': cannot create a file in '%s': %s", TG_SHOWN(path),
		                TG_SHOWN(t->dir), strerror(e));
	}
	if (t->replaces)
		(void)fchmod(fd, t->perm); /* where it fails (some file systems have no modes) the bits less the umask stay */
	return fd;
}

int tg_file_check_writable(const char *path)
{
	output_target t;
	TG_TRY(resolve_target(path, &t));
	char *tmp;
	int fd = open_temp(path, &t, &tmp);
	if (fd >= 0) {
		close(fd);
		unlink(tmp);
		free(tmp);
	}
	target_free(&t);
	return fd < 0 ? fd : 0;
}

/* The folder's entry for the renamed file reaches the disk too. */
static void sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

int tg_write_file_atomic(const char *path, int (*write)(FILE *f, void *ctx), void *ctx)
{
	output_target t;
	TG_TRY(resolve_target(path, &t));
	char *tmp;
	int fd = open_temp(path, &t, &tmp);
	if (fd < 0) {
		target_free(&t);
		return fd;
	}
	int rc = 0;
	FILE *f = fdopen(fd, "w");
	if (!f) {
		rc = tg_error(TG_EIO, "cannot write '%s': %s", TG_SHOWN(path), strerror(errno));
		close(fd);
	} else {
		rc = write(f, ctx);
		if (rc < 0) {
			/* the writer's own message stands, with the file it was for */
			char msg[700];
			snprintf(msg, sizeof msg, "%s", tg_last_error());
			rc = tg_error(rc, "cannot write '%s': %s", TG_SHOWN(path), msg);
		} else if (fflush(f) != 0 || ferror(f)) {
			rc = tg_error(TG_EIO, "cannot write '%s': %s", TG_SHOWN(path), strerror(errno ? errno : EIO));
		} else if (fsync(fd) != 0) {
			rc = tg_error(TG_EIO, "cannot write '%s': fsync failed: %s", TG_SHOWN(path), strerror(errno));
		}
		if (fclose(f) != 0 && rc == 0)
			rc = tg_error(TG_EIO, "cannot write '%s': closing it failed: %s", TG_SHOWN(path), strerror(errno));
	}
	if (rc == 0 && rename(tmp, t.file) != 0)
		rc = tg_error(TG_EIO, "cannot write '%s': %s", TG_SHOWN(path), strerror(errno));
	if (rc < 0)
		unlink(tmp);
	else
		sync_dir(t.dir);
	free(tmp);
	target_free(&t);
	return rc;
}
