import sys
sys.path.insert(0,"bench"); from quotes_eval import *
names=sys.argv[1].split(",") if len(sys.argv)>1 and sys.argv[1] else None
root=CACHE/'root'; s=load_settings(root); nlp=load_nlp(s.extract.spacy_model); tg=tagger_for(nlp, PROJECT_THEMES)
golds=[g for g in load_gold('tune') if not names or g.name in names]
tp=fp=fn=0; found=tot=0; ftp=ffp=ffn=0
verbose = "-v" in sys.argv
for g in golds:
    t=transcript_of(root,g.name); qs,_,_=extract(t,s.extract,PROJECT_THEMES); top=qs[:10]
    for gq in g.quotes:
        tot+=1
        m=[q for q in top if overlap(gq['text'],q.text)[0]>=COVER and overlap(gq['text'],q.text)[1]>=PURITY]
        if m:
            found+=1; p=set(m[0].themes); w=set(gq['themes']); ftp+=len(p&w); ffp+=len(p-w); ffn+=len(w-p)
        pred=set(tg.tag(nlp(gq['text']))); want=set(gq['themes'])
        tp+=len(pred&want); fp+=len(pred-want); fn+=len(want-pred)
        if verbose and pred!=want:
            print(g.name, "gold", sorted(want), "got", [(x.theme,x.cues) for x in tg.match(nlp(gq['text']))]); print("   ", gq['text'])
        if verbose and not m: print(g.name, "MISSED", gq['text'][:90])
print(f"recall@10 {found}/{tot}={found/tot:.2f}  found-theme P {ftp/max(1,ftp+ffp):.2f} R {ftp/max(1,ftp+ffn):.2f}  gold-text P {tp/max(1,tp+fp):.2f} R {tp/max(1,tp+fn):.2f}")
