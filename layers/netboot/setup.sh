#!/bin/sh
# netboot layer, step 2: runs inside the image after step 1 installed
# /etc/initramfs-tools/{conf.d/compose-netboot.conf,scripts/init-bottom/compose-overlay}.
set -eu

overlay="${COMPOSE_OVERLAY_DEFAULT:-tmpfs}"
case "$overlay" in
tmpfs | none) ;;
*)
	echo "netboot: overlay must be 'tmpfs' or 'none', not '$overlay'" >&2
	exit 1
	;;
esac

# overlayfs has to be in the initramfs. `modules` is a Debian conffile, so
# append to it rather than replace it.
modules=/etc/initramfs-tools/modules
if ! grep -qx 'overlay' "$modules" 2>/dev/null; then
	echo overlay >>"$modules"
fi

# Bake the default overlay into the init-bottom script.
hook=/etc/initramfs-tools/scripts/init-bottom/compose-overlay
sed -i "s/^DEFAULT_OVERLAY=.*/DEFAULT_OVERLAY=$overlay/" "$hook"
chmod 0755 "$hook"

# Diskless: no local disks to mount, only a tmpfs /tmp.
cat >/etc/fstab <<'FSTAB'
# compose netboot: the root comes over NFS; no local disks.
tmpfs /tmp tmpfs defaults 0 0
FSTAB

# Rebuild the initramfs of every installed kernel with the above.
update-initramfs -u -k all
