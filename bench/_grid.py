import sys, itertools
sys.path.insert(0,"bench"); from quotes_eval import *
root=CACHE/'root'; s=load_settings(root)
golds=load_gold('tune'); ts={g.name: transcript_of(root,g.name) for g in golds}
def recall(settings):
    found=tot=0
    for g in golds:
        qs,_,_=extract(ts[g.name],settings.extract,PROJECT_THEMES); top=qs[:10]
        for gq in g.quotes:
            tot+=1
            if any(min(overlap(gq['text'],q.text)[0]/COVER, overlap(gq['text'],q.text)[1]/PURITY)>=1 for q in top): found+=1
    return found/tot
base=s.extract.weights.model_dump()
print("base", recall(s))
for k in base:
    for f in (0, 2):
        w=dict(base); w[k]=base[k]*f if f else 0
        s2=s.model_copy(deep=True); s2.extract.weights=type(s.extract.weights)(**w)
        print(k, w[k], round(recall(s2),3))
import sys; sys.exit()
s3=s.model_copy(deep=True); s3.extract.max_quotes=100
found=tot=0
for g in golds:
    qs,_,_=extract(ts[g.name],s3.extract,PROJECT_THEMES)
    for gq in g.quotes:
        tot+=1
        ranks=[i for i,q in enumerate(qs) if min(overlap(gq['text'],q.text)[0]/COVER, overlap(gq['text'],q.text)[1]/PURITY)>=1]
        print(g.name, ranks[:3], len(qs), gq['text'][:60])
