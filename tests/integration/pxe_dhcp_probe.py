#!/usr/bin/python3
"""A PXE client's DHCP discover, as firmware or iPXE sends it, for the netboot
dnsmasq test: prints what the proxy-DHCP answer tells the client to boot, as
JSON. Run inside the test's "machine" network namespace.

usage: pxe_dhcp_probe.py INTERFACE MAC firmware|firmware-efi|ipxe [CLIENT_ADDRESS]
"""
import json
import os
import select
import socket
import struct
import sys
import time


def options(data):
    out, i = {}, 0
    while i < len(data):
        code = data[i]
        if code == 0:
            i += 1
            continue
        if code == 255 or i + 1 >= len(data):
            break
        n = data[i + 1]
        out[code] = data[i + 2:i + 2 + n]
        i += 2 + n
    return out


def pxe_menu(opt43):
    # Option 43 suboptions: 9 = boot menu (type:2, len:1, text), 10 = prompt.
    sub, items = options(opt43), []
    menu = sub.get(9, b"")
    i = 0
    while i + 3 <= len(menu):
        n = menu[i + 2]
        items.append((struct.unpack("!H", menu[i:i + 2])[0], menu[i + 3:i + 3 + n].decode("latin-1")))
        i += 3 + n
    return items


def main():
    interface, mac, kind = sys.argv[1], sys.argv[2], sys.argv[3]
    hw = bytes(int(x, 16) for x in mac.split(":"))
    xid = os.getpid() & 0xFFFFFFFF
    opts = bytes([53, 1, 1])  # DHCPDISCOVER
    arch = 7 if kind == "firmware-efi" else 0  # x86-64 UEFI, x86 BIOS
    opts += bytes([60, 32]) + ("PXEClient:Arch:%05d:UNDI:002001" % arch).encode()
    opts += bytes([93, 2]) + struct.pack("!H", arch)
    opts += bytes([94, 3, 1, 2, 1])  # UNDI 2.1
    opts += bytes([97, 17, 0]) + bytes(range(16))  # machine GUID
    if kind == "ipxe":
        opts += bytes([77, 4]) + b"iPXE"
        opts += bytes([175, 3, 0xB1, 1, 1])  # iPXE encapsulated options (priority)
    opts += bytes([55, 5, 1, 3, 43, 60, 67, 255])
    packet = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, 0x8000, b"\0" * 4, b"\0" * 4,
                         b"\0" * 4, b"\0" * 4, hw + b"\0" * 10, b"", b"") + b"\x63\x82\x53\x63" + opts

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
    s.bind(("0.0.0.0", 68))
    answers = []
    deadline = time.time() + 8
    next_send = 0
    while time.time() < deadline and not answers:
        if time.time() >= next_send:
            s.sendto(packet, ("255.255.255.255", 67))
            next_send = time.time() + 1
        ready, _, _ = select.select([s], [], [], 0.2)
        if not ready:
            continue
        data, peer = s.recvfrom(4096)
        if len(data) < 240 or data[0] != 2 or struct.unpack("!I", data[4:8])[0] != xid:
            continue
        o = options(data[240:])
        answers.append({
            "from": peer[0],
            "type": o.get(53, b"\0")[0],
            "yiaddr": socket.inet_ntoa(data[16:20]),
            "siaddr": socket.inet_ntoa(data[20:24]),
            "file": data[108:236].split(b"\0")[0].decode("latin-1"),
            "option67": o.get(67, b"").split(b"\0")[0].decode("latin-1"),
            "vendor_class": o.get(60, b"").decode("latin-1"),
            "menu": [text for _, text in pxe_menu(o[43])] if 43 in o else [],
            "menu_types": [t for t, _ in pxe_menu(o[43])] if 43 in o else [],
        })
    if answers and kind.startswith("firmware"):
        # A PXE ROM then asks the boot server (port 4011) for its file: with a
        # menu, the first item's (the prompt's timeout is 0; option 43, item
        # 71); UEFI clients get no menu from dnsmasq and just ask.
        req = bytes([53, 1, 3]) + opts[3:opts.index(bytes([55, 5]))]
        if answers[0]["menu_types"]:
            item = answers[0]["menu_types"][0]
            req += bytes([43, 7, 71, 4]) + struct.pack("!HH", item, 0)
        req += bytes([255])
        # By now the site's DHCP server has given the client its address (ciaddr).
        own = socket.inet_aton(sys.argv[4]) if len(sys.argv) > 4 else b"\0" * 4
        request = packet[:12] + own + packet[16:240] + req
        s.sendto(request, (answers[0]["from"], 4011))
        ready, _, _ = select.select([s], [], [], 5)
        if ready:
            data, peer = s.recvfrom(4096)
            if len(data) >= 240 and struct.unpack("!I", data[4:8])[0] == xid:
                answers[0]["boot_server_file"] = data[108:236].split(b"\0")[0].decode("latin-1")
                answers[0]["boot_server_siaddr"] = socket.inet_ntoa(data[20:24])
    print(json.dumps(answers))
    return 0 if answers else 1


if __name__ == "__main__":
    sys.exit(main())
