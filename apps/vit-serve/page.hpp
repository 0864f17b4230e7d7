// The page at GET /: pick or drop an image, see the top 5 labels. Inline
// HTML/CSS/JS only, so the binary serves it with no external assets.
#pragma once

#include <string>

namespace serve {

inline const std::string& page_html() {
    static const std::string html = R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vit-serve</title>
<style>
body{font-family:sans-serif;max-width:760px;margin:2em auto;color:#222}
#drop{border:2px dashed #888;border-radius:8px;padding:2em;text-align:center;cursor:pointer}
#drop.over{background:#eef}
#view{position:relative;display:inline-block;margin-top:1em}
#view img,#view canvas{max-width:384px;display:block}
#view canvas{position:absolute;left:0;top:0;opacity:.5}
.row{display:flex;align-items:center;margin:.3em 0}
.label{width:260px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.bar{height:14px;background:#36c;margin:0 .5em}
#err{color:#b00}
</style></head><body>
<h1>vit-serve</h1>
<div id="drop">Drop an image here or <label><u>pick one</u><input id="file" type="file" accept="image/*" hidden></label></div>
<div id="err"></div>
<div id="view"><img id="img" alt=""><canvas id="heat"></canvas></div>
<div id="preds"></div>
<script>
const drop=document.getElementById('drop'),file=document.getElementById('file');
drop.ondragover=e=>{e.preventDefault();drop.classList.add('over')};
drop.ondragleave=()=>drop.classList.remove('over');
drop.ondrop=e=>{e.preventDefault();drop.classList.remove('over');if(e.dataTransfer.files[0])run(e.dataTransfer.files[0])};
file.onchange=()=>{if(file.files[0])run(file.files[0])};
async function run(f){
  document.getElementById('err').textContent='';
  const img=document.getElementById('img');img.src=URL.createObjectURL(f);
  const preds=document.getElementById('preds');preds.textContent='…';
  try{
    const r=await fetch('/predict',{method:'POST',headers:{'Content-Type':'application/octet-stream'},body:f});
    const j=await r.json();
    if(!r.ok)throw new Error(j.error||r.status);
    preds.textContent='';
    for(const p of j){
      const row=document.createElement('div');row.className='row prediction';
      const l=document.createElement('span');l.className='label';l.textContent=p.label;
      const b=document.createElement('span');b.className='bar';b.style.width=Math.max(1,Math.round(p.score*300))+'px';
      const s=document.createElement('span');s.textContent=p.score.toFixed(4);
      row.append(l,b,s);preds.append(row);
    }
    const h=await fetch('/attention',{method:'POST',headers:{'Content-Type':'application/octet-stream'},body:f});
    if(h.ok){const m=await h.json();draw(m,img)}
  }catch(e){preds.textContent='';document.getElementById('err').textContent=String(e)}
}
function draw(m,img){
  const c=document.getElementById('heat');
  const go=()=>{c.width=m.cols;c.height=m.rows;c.style.width=img.width+'px';c.style.height=img.height+'px';
    const ctx=c.getContext('2d'),d=ctx.createImageData(m.cols,m.rows);
    for(let i=0;i<m.rows*m.cols;i++){const v=m.values[i];d.data[4*i]=255*v;d.data[4*i+1]=64*v;d.data[4*i+2]=255*(1-v);d.data[4*i+3]=255}
    ctx.putImageData(d,0,0);c.style.imageRendering='auto'};
  if(img.complete)go();else img.onload=go;
}
</script></body></html>
)HTML";
    return html;
}

}  // namespace serve
