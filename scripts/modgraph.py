#!/usr/bin/env python3
# The crate's module graph from its `crate::<module>` paths (src/, without src/bin), and its
# import circles. Run from the checkout: python3 scripts/modgraph.py
import re,os,sys,collections
root='src'
mods=['net','msg','file','state','store','admin','msfs','login','config','auth','proto','stats','clock','server','client','cli','signals']
edges=collections.defaultdict(set)
for dp,_,fs in os.walk(root):
    for f in fs:
        if not f.endswith('.rs'): continue
        p=os.path.join(dp,f)
        rel=os.path.relpath(p,root)
        if rel.startswith('bin/'): continue
        top=rel.split('/')[0].replace('.rs','')
        txt=open(p).read()
        # strip test modules crudely: skip files named tests.rs / *_tests.rs
        for m in re.findall(r'crate::([a-z_]+)',txt):
            if m!=top and m in mods: edges[top].add(m)
for k in sorted(edges): print(k,'->',' '.join(sorted(edges[k])))
# SCCs
import itertools
nodes=set(edges)|{x for v in edges.values() for x in v}
idx={};low={};st=[];on=set();res=[];i=[0]
def sc(v):
    idx[v]=low[v]=i[0];i[0]+=1;st.append(v);on.add(v)
    for w in edges.get(v,()):
        if w not in idx: sc(w);low[v]=min(low[v],low[w])
        elif w in on: low[v]=min(low[v],idx[w])
    if low[v]==idx[v]:
        c=[]
        while True:
            w=st.pop();on.discard(w);c.append(w)
            if w==v:break
        res.append(c)
for v in sorted(nodes):
    if v not in idx: sc(v)
print('cycles:',[sorted(c) for c in res if len(c)>1])
