# Host-side helpers of Scripts/testbed for the qemu machine kind and the Debian 13 root (sourced).
#
# Kernels: Debian's own distribution kernels, booted by qemu under TCG (never KVM: guests here die
# with "KVM internal error ... emulation failure"). Each is extracted from its package with
# `apt-get download` + `dpkg -x` into the cache, never installed into the host's /boot:
#   debian12  bookworm's linux-image-6.1.0-NN-amd64 (NN resolved at run time through the host's apt)
#   debian13  trixie's  linux-image-6.12.NN-amd64  (resolved through the Debian 13 root's apt)
# Roots: the host's own `/` (Debian 12: libreswan 4.10), or a Debian 13 root made with debootstrap
# (libreswan 5.2), both exported read-only over virtio-9p.
# The cache ($TESTBED_CACHE, /var/cache/vtictl-testbed) keeps what was downloaded and built; a
# missing or half-made entry is made again.

TESTBED_CACHE=${TESTBED_CACHE:-/var/cache/vtictl-testbed}
# What the Debian 13 root holds: libreswan 5.2 and the tools the scenarios use; libmnl0 and
# libsqlite3-0 for vti-updown and vtid (the Swift runtime comes from the host's toolchain, bind-mounted).
# nftables and python3-minimal: vtid-mss-clamp cross-checks vtid's table with nft and opens TCP
# connections with python. The root is made again when this list changes (its .testbed-ready
# holds the list it was made with).
DEBIAN13_PACKAGES=libreswan,bind9-host,iproute2,iputils-ping,kmod,libmnl0,libsqlite3-0,libstdc++6,nftables,python3-minimal
# The modules the initramfs loads to reach its root over virtio-9p.
INITRAMFS_MODULES="virtio_pci 9pnet_virtio 9p"

qemu_missing_packages() {
  command -v qemu-system-x86_64 >/dev/null || echo "qemu-system-x86_64 is missing: apt-get install qemu-system-x86"
  [ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -x cpio >/dev/null \
    || echo "a static busybox (for the initramfs) is missing: apt-get install busybox-static"
  command -v dpkg-deb >/dev/null || echo "dpkg-deb is missing: apt-get install dpkg"
  command -v xz >/dev/null || echo "xz is missing: apt-get install xz-utils"
  [ -x /sbin/depmod ] || [ -x /usr/sbin/depmod ] || echo "depmod is missing: apt-get install kmod"
  command -v python3 >/dev/null || echo "python3 is missing (it finds the xz stream in vmlinuz): apt-get install python3"
  return 0
}

debian13_missing_packages() {
  [ -e "$TESTBED_CACHE/debian13-root/.testbed-ready" ] && return 0
  command -v debootstrap >/dev/null || echo "debootstrap is missing (it makes the Debian 13 root): apt-get install debootstrap"
  return 0
}

# log MESSAGE: progress of the one-time preparation, on stderr.
prep_log() { echo "testbed: $*" >&2; }

# prep_lock: test beds started at once (several sessions share a machine) prepare one at a time;
# called inside the $(...) of a prepare function, the lock goes when it returns.
prep_lock() {
  mkdir -p "$TESTBED_CACHE"
  exec 9>"$TESTBED_CACHE/.prepare.lock"
  flock 9
}

# debian13_root_ready ROOT: whether ROOT was made, and with today's package list.
debian13_root_ready() { [ "$(cat "$1/.testbed-ready" 2>/dev/null)" = "$DEBIAN13_PACKAGES" ]; }

# prepare_debian13_root: the cached Debian 13 root, made if missing or made with another package
# list. Prints its path.
prepare_debian13_root() {
  local root="$TESTBED_CACHE/debian13-root" started=$EPOCHREALTIME
  debian13_root_ready "$root" || prep_lock
  if ! debian13_root_ready "$root"; then
    mkdir -p "$TESTBED_CACHE"
    rm -rf "$root" "$root.new"
    prep_log "making the Debian 13 root in $root (debootstrap, about a minute, once)"
    debootstrap --variant=minbase --include="$DEBIAN13_PACKAGES" trixie "$root.new" http://deb.debian.org/debian \
      >"$TESTBED_CACHE/debootstrap.log" 2>&1 \
      || die "debootstrap of Debian 13 failed (is deb.debian.org reachable?); log: $TESTBED_CACHE/debootstrap.log"
    # Mount points for what the guest binds from the host (the repository and toolchain paths are
    # made per run, see prepare_root_mountpoints).
    mkdir -p "$root.new/host"
    ( chroot "$root.new" dpkg-query -W -f='${Version}' libreswan ) >"$root.new/.testbed-libreswan" 2>/dev/null || true
    echo "$DEBIAN13_PACKAGES" >"$root.new/.testbed-ready"
    mv "$root.new" "$root"
    prep_log "Debian 13 root ready ($(awk -v s="$started" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.0f", e - s }') s, libreswan $(cat "$root/.testbed-libreswan"))"
  fi
  echo "$root"
}

# prepare_root_mountpoints ROOT PATH...: the directories the guest binds host paths onto must exist
# in the read-only root; they are made on the host side. Paths under /tmp and /run need none
# (tmpfs in the guest).
prepare_root_mountpoints() {
  local root=$1 path
  shift
  for path in "$@"; do
    case "$path" in /tmp/*|/run/*|/tmp|/run) ;; *) mkdir -p "$root$path" ;; esac
  done
}

# kernel_package NAME: the versioned linux-image package behind the distribution's metapackage.
kernel_package() {
  case $1 in
    debian12) apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }' ;;
    debian13)
      local root
      root=$(prepare_debian13_root)
      # The Debian 13 root's apt knows trixie's kernel; its lists are fetched once a day at most.
      if [ -z "$(find "$root/var/lib/apt/lists" -name '*_Packages' -mmin -1440 2>/dev/null | head -n 1)" ]; then
        chroot "$root" apt-get update -qq >/dev/null 2>&1 || true
      fi
      chroot "$root" apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
      ;;
  esac
}

# prepare_kernel NAME: the cached kernel (vmlinux, modules, initramfs), made if missing. Prints its
# directory: vmlinux (ELF, booted directly: no decompression under TCG), initrd.img, release
# (uname -r), modules (the tree for `modprobe -d`).
prepare_kernel() {
  local name=$1 package dir release started=$EPOCHREALTIME
  package=$(kernel_package "$name")
  if [ -z "$package" ]; then
    # Offline: the newest one already cached will do.
    dir=$(ls -d "$TESTBED_CACHE/kernel-$name"-linux-image-* 2>/dev/null | sort -V | tail -n 1)
    [ -n "$dir" ] && [ -e "$dir/.testbed-ready" ] || die "cannot resolve the $name kernel package (apt-cache depends linux-image-amd64 said nothing) and none is cached"
    echo "$dir"; return
  fi
  dir="$TESTBED_CACHE/kernel-$name-$package"
  [ -e "$dir/.testbed-ready" ] || prep_lock
  if [ ! -e "$dir/.testbed-ready" ]; then
    rm -rf "$dir" "$dir.new"
    mkdir -p "$dir.new"
    prep_log "preparing the $name kernel $package in $dir (once)"
    if [ "$name" = debian13 ]; then
      local root; root=$(prepare_debian13_root)
      rm -f "$root"/tmp/linux-image-*.deb
      (cd "$root/tmp" && chroot "$root" sh -c "cd /tmp && apt-get download -qq $package") >/dev/null 2>&1 \
        || die "could not download $package through the Debian 13 root's apt"
      mv "$root"/tmp/"$package"_*.deb "$dir.new/"
    else
      (cd "$dir.new" && apt-get download -qq "$package" >/dev/null 2>&1) || die "apt-get download $package failed"
    fi
    dpkg-deb -x "$dir.new/$package"_*.deb "$dir.new/kroot" && rm -f "$dir.new/$package"_*.deb
    release=${package#linux-image-}
    # trixie's packages keep modules under /usr/lib/modules; modprobe -d BASE reads BASE/lib/modules.
    local base="$dir.new/kroot"
    [ -d "$base/lib/modules/$release" ] || base="$dir.new/kroot/usr"
    [ -d "$base/lib/modules/$release" ] || die "$package has no modules for $release"
    depmod -b "$base" "$release"
    # Cut the ELF vmlinux out of vmlinuz at its compressed stream (bookworm: xz, trixie: zstd):
    # PVH boots it directly, about 6 s faster under TCG than decompressing the bzImage. Without a
    # decompressor for it, the bzImage itself is booted.
    local vmlinuz offset
    vmlinuz=$(ls "$dir.new"/kroot/boot/vmlinuz-* | head -n 1)
    offset=$(python3 -c 'import sys; print(open(sys.argv[1], "rb").read().find(b"\xfd7zXZ\x00"))' "$vmlinuz")
    if [ "$offset" -gt 0 ]; then
      tail -c +$((offset + 1)) "$vmlinuz" | xz -dc --single-stream >"$dir.new/vmlinux" 2>/dev/null || true
    else
      offset=$(python3 -c 'import sys; print(open(sys.argv[1], "rb").read().find(b"\x28\xb5\x2f\xfd"))' "$vmlinuz")
      if [ "$offset" -gt 0 ] && command -v zstd >/dev/null; then
        tail -c +$((offset + 1)) "$vmlinuz" | zstd -dc 2>/dev/null >"$dir.new/vmlinux" || true
      fi
    fi
    if [ "$(head -c 4 "$dir.new/vmlinux" 2>/dev/null | od -An -c | tr -d ' ')" != 177ELF ]; then
      prep_log "no ELF vmlinux could be cut out of $vmlinuz (apt-get install xz-utils zstd); booting the bzImage"
      cp "$vmlinuz" "$dir.new/vmlinux"
    fi
    rm -rf "$dir.new"/kroot/boot "$dir.new"/kroot/usr/share
    # The initramfs: a static busybox and the modules that reach the 9p root, in load order.
    local irfs="$dir.new/initramfs" module file
    mkdir -p "$irfs/bin" "$irfs/proc" "$irfs/sys" "$irfs/dev" "$irfs/newroot" "$irfs/modules"
    cp /bin/busybox "$irfs/bin/"
    for module in $INITRAMFS_MODULES; do
      modprobe -d "$base" -S "$release" --show-depends "$module" | awk '$1 == "insmod" { print $2 }'
    done | awk '!seen[$0]++' | while read -r file; do
      # busybox's insmod reads plain modules only (trixie's are xz-compressed).
      local plain
      plain=$(basename "$file"); plain=${plain%.xz}; plain=${plain%.zst}
      case $file in
        *.xz) xz -dc "$file" >"$irfs/modules/$plain" ;;
        *.zst) zstd -qdc "$file" >"$irfs/modules/$plain" ;;
        *) cp "$file" "$irfs/modules/$plain" ;;
      esac
      echo "$plain" >>"$irfs/modules/order"
    done
    cp "$guest_dir/initramfs-init" "$irfs/init"
    chmod +x "$irfs/init"
    (cd "$irfs" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 >"$dir.new/initrd.img")
    rm -rf "$irfs"
    echo "$release" >"$dir.new/release"
    ln -s "${base#"$dir.new/"}" "$dir.new/modules"
    touch "$dir.new/.testbed-ready"
    mv "$dir.new" "$dir"
    prep_log "$name kernel $release ready ($(awk -v s="$started" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.0f", e - s }') s)"
  fi
  echo "$dir"
}

# swift_runtime_directory: where the Swift runtime that vtid and vtictl link lives (the toolchain
# of the `swift` on PATH, else /opt/swift); nothing if there is none.
swift_runtime_directory() {
  local swift dir
  swift=$(command -v swift 2>/dev/null || echo /opt/swift/usr/bin/swift)
  dir=$(dirname "$(readlink -f "$swift")")/../lib/swift/linux
  [ -d "$dir" ] && (cd "$dir" && pwd -P)
  return 0
}
