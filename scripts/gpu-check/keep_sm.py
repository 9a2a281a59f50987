#!/usr/bin/env python3
# Zero the GPU code of every architecture but the one kept, so the library compresses to
# what the target GPU actually loads. Headers stay, so the loader's view is unchanged.
import struct, sys, mmap
path, keep = sys.argv[1], int(sys.argv[2])
f=open(path,'r+b'); m=mmap.mmap(f.fileno(),0)
magic=struct.pack('<I',0xBA55ED50); pos=0; zeroed=0; kept=0
while True:
    i=m.find(magic,pos)
    if i<0: break
    ver,hs=struct.unpack_from('<HH',m,i+4); fsz=struct.unpack_from('<Q',m,i+8)[0]
    if hs!=16 or fsz==0 or fsz>len(m): pos=i+4; continue
    p=i+16; end=i+16+fsz
    while p<end:
        kind,ever,ehs=struct.unpack_from('<HHI',m,p)
        padded=struct.unpack_from('<Q',m,p+8)[0]; sm=struct.unpack_from('<I',m,p+28)[0]
        if ehs==0: break
        if sm!=keep:
            m[p+ehs:p+ehs+padded]=b'\0'*padded; zeroed+=padded
        else: kept+=padded
        p+=ehs+padded
    pos=end
m.flush(); print('zeroed MiB',zeroed>>20,'kept MiB',kept>>20)
