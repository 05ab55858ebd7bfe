package io.github.medallion.hadoop;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.attribute.PosixFilePermission;
import java.util.EnumSet;
import java.util.Set;

import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.apache.hadoop.fs.permission.FsPermission;

/**
 * Hadoop's raw local file system, with permissions set and links read through java.nio.
 *
 * <p>Without Hadoop's native library, {@link RawLocalFileSystem} starts a {@code chmod} process
 * for each file or directory it creates and a {@code readlink} process for each link status a
 * rename asks for (Delta commits each log file by a rename), about 15 ms each. The same calls
 * through java.nio start no process. Everything else is Hadoop's own code.
 */
public class NioLocalFileSystem extends RawLocalFileSystem {

  private static final PosixFilePermission[] BITS = {
    PosixFilePermission.OTHERS_EXECUTE, PosixFilePermission.OTHERS_WRITE,
    PosixFilePermission.OTHERS_READ, PosixFilePermission.GROUP_EXECUTE,
    PosixFilePermission.GROUP_WRITE, PosixFilePermission.GROUP_READ,
    PosixFilePermission.OWNER_EXECUTE, PosixFilePermission.OWNER_WRITE,
    PosixFilePermission.OWNER_READ,
  };
  private static final int STICKY = 01000;

  @Override
  public void setPermission(Path path, FsPermission permission) throws IOException {
    short mode = permission.toShort();
    if ((mode & STICKY) != 0) {
      super.setPermission(path, permission); // java.nio cannot set the sticky bit
      return;
    }
    Set<PosixFilePermission> bits = EnumSet.noneOf(PosixFilePermission.class);
    for (int bit = 0; bit < BITS.length; bit++) {
      if ((mode & (1 << bit)) != 0) {
        bits.add(BITS[bit]);
      }
    }
    Files.setPosixFilePermissions(pathToFile(path).toPath(), bits);
  }

  /** A path that is no symbolic link has the status {@link #getFileStatus} gives, as Hadoop's
   * own method returns once {@code readlink} found no target; a link is left to Hadoop. */
  @Override
  public FileStatus getFileLinkStatus(Path path) throws IOException {
    File file = pathToFile(path);
    if (Files.isSymbolicLink(file.toPath())) {
      return super.getFileLinkStatus(path);
    }
    return getFileStatus(path);
  }
}
