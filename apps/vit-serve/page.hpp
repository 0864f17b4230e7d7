// The page at GET /: pick or drop an image, see the top 5 labels and where
// the model looks; with labels typed in the labels box (a CLIP or SigLIP
// checkpoint), the image's zero-shot scores for them instead. Inline
// HTML/CSS/JS only (no external assets, no CDN), so the binary serves it as
// is. tests/serve/test_browser.py drives it in headless Chromium through the
// ids used here (#file, #labels, #preds .prediction, #rtitle, #heat, #err,
// #token).
//
// The heat map is drawn as vit-classify --attention-map draws it
// (apps/vit-classify/main.cpp write_attention_map): the patch grid from
// POST /attention upsampled bilinearly with cell centres aligned, rescaled
// to min..max, jet-like colour, alpha 0.25 + 0.45 t. The canvas lies over
// the image at its displayed size, so the browser's "source over" blend
// gives the same (1 - a) image + a colour as the PNG.
#pragma once

#include <string>

namespace serve {

inline const std::string& page_html() {
    static const std::string html = R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>vit-serve</title><link rel="icon" href="data:,">
<style>
body{font:16px/1.4 system-ui,sans-serif;max-width:900px;margin:1.5em auto;padding:0 1em;color:#222}
h1{font-size:1.5em;margin:.2em 0 .6em}
#drop{border:2px dashed #888;border-radius:8px;padding:1.5em;text-align:center}
#drop.over{background:#eef;border-color:#36c}
#drop label{color:#1a4fa0;text-decoration:underline;cursor:pointer}
.vh{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
#drop:focus-within{outline:2px solid #36c;outline-offset:2px}
#zs{margin:.6em 0}
#labels{width:32em;max-width:100%}
#auth{margin:.6em 0;font-size:.9em}
#auth input{width:20em;max-width:100%}
#auth code{white-space:nowrap}
#err{color:#a00;font-weight:bold;margin:.6em 0}
#err:empty{display:none}
main{display:flex;flex-wrap:wrap;gap:1.5em;margin-top:1em}
#view{position:relative;margin:0;line-height:0;align-self:flex-start;max-width:100%}
#img{max-width:420px;max-height:420px;width:auto;display:block}
@media (max-width:480px){#img{max-width:100%}}
#heat{position:absolute;left:0;top:0;pointer-events:none}
#results{flex:1;min-width:260px}
#preds{list-style:none;padding:0;margin:0}
.prediction{display:grid;grid-template-columns:minmax(5em,11em) minmax(100px,1fr) 3.5em;align-items:center;gap:.5em;margin:.35em 0}
.label{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.track{background:#e6e6e6;height:14px;border-radius:3px}
.bar{background:#36c;height:100%;border-radius:3px}
.prediction:first-child .bar{background:#1a7f37}
.score{text-align:right;font-variant-numeric:tabular-nums}
.legend{display:flex;align-items:center;gap:.4em;font-size:.85em;margin-top:1em}
.legend i{display:inline-block;width:120px;height:10px;background:linear-gradient(90deg,#00007f,#00f 12.5%,#0ff 37.5%,#ff0 62.5%,#f00 87.5%,#7f0000)}
#status{color:#555;font-size:.9em}
</style></head><body>
<h1>vit-serve</h1>
<div id="drop">Drop an image here, or
<label for="file">pick a file</label><input id="file" class="vh" type="file" accept="image/*"></div>
<div id="zs"><label for="labels">Zero-shot labels, comma-separated (CLIP and SigLIP checkpoints; empty: the classifier's labels)</label><br>
<input id="labels" type="text" autocomplete="off" spellcheck="false" placeholder="a cat, a dog, a cup of coffee"></div>
<details id="auth"><summary>API token</summary>
<label for="token">Bearer token, if the server was started with <code>--api-key-file</code> (kept in this tab only)</label><br>
<input id="token" type="password" autocomplete="off" spellcheck="false"></details>
<div id="err" role="alert"></div>
<main>
<figure id="view" hidden><img id="img" alt=""><canvas id="heat" role="img" aria-label="Attention heat map over the image: red where the model looks most, blue where least"></canvas></figure>
<section id="results" aria-labelledby="rtitle" hidden>
<h2 id="rtitle" style="font-size:1.1em;margin:0 0 .4em">Top labels</h2>
<ol id="preds"></ol>
<p id="status" role="status" aria-live="polite"></p>
<div class="legend"><label><input id="show-heat" type="checkbox" checked> Attention map</label>
<span aria-hidden="true">low <i></i> high</span></div>
</section>
</main>
<script>
'use strict';
const $=id=>document.getElementById(id);
const drop=$('drop'),file=$('file'),img=$('img'),heat=$('heat'),token=$('token'),labels=$('labels');
let seq=0,current=null,map=null;
token.value=sessionStorage.getItem('vit-serve-token')||'';
if(token.value)$('auth').open=true;
token.addEventListener('change',()=>{
  const t=token.value.trim();
  if(t)sessionStorage.setItem('vit-serve-token',t);else sessionStorage.removeItem('vit-serve-token');
  if(current)run(current);
});
labels.addEventListener('change',()=>{if(current)run(current)});
drop.addEventListener('dragover',e=>{e.preventDefault();drop.classList.add('over')});
drop.addEventListener('dragleave',()=>drop.classList.remove('over'));
drop.addEventListener('drop',e=>{e.preventDefault();drop.classList.remove('over');
  const f=e.dataTransfer.files[0];if(f)run(f)});
file.addEventListener('change',()=>{if(file.files[0])run(file.files[0])});
$('show-heat').addEventListener('change',e=>{heat.style.visibility=e.target.checked?'visible':'hidden'});
img.addEventListener('load',draw);
img.addEventListener('error',()=>{$('view').hidden=true});
new ResizeObserver(draw).observe(img);

// POSTs the raw image (or a JSON body); answers the parsed JSON or throws the server's {"error"}.
async function post(path,f,json){
  const h={'Content-Type':json?'application/json':'application/octet-stream'};
  const t=sessionStorage.getItem('vit-serve-token');
  if(t)h.Authorization='Bearer '+t;
  const r=await fetch(path,{method:'POST',headers:h,body:json?JSON.stringify(json):f});
  let j=null;
  try{j=await r.json()}catch(e){}
  if(!r.ok){
    if(r.status===401)$('auth').open=true;
    throw new Error(j&&j.error?j.error:'HTTP '+r.status+' '+r.statusText);
  }
  if(j===null)throw new Error(path+': the answer is not JSON');
  return j;
}

// The file's bytes as base64, for the JSON of a zero-shot call.
function base64(f){
  return new Promise((ok,no)=>{const r=new FileReader();
    r.onload=()=>ok(String(r.result).slice(String(r.result).indexOf(',')+1));
    r.onerror=()=>no(r.error||new Error('cannot read '+f.name));r.readAsDataURL(f)});
}

// The labels box as HF's widget takes it: comma-separated, blanks dropped.
function typedLabels(){return labels.value.split(',').map(s=>s.trim()).filter(s=>s)}

async function run(f){
  const my=++seq;current=f;map=null;
  const zs=typedLabels();
  $('rtitle').textContent=zs.length?'Zero-shot labels':'Top labels';
  $('err').textContent='';$('preds').textContent='';
  heat.width=heat.height=0;delete heat.dataset.drawn;
  if(img.src)URL.revokeObjectURL(img.src);
  img.alt='The selected image, '+f.name;img.src=URL.createObjectURL(f);
  $('view').hidden=false;$('results').hidden=false;
  $('status').textContent='Classifying '+f.name+'…';
  const attention=post('/attention',f);attention.catch(()=>{});
  try{
    const preds=zs.length?await post('/predict',f,{inputs:await base64(f),parameters:{candidate_labels:zs}}):await post('/predict',f);
    if(my!==seq)return;
    show(preds);
  }catch(e){
    if(my!==seq)return;
    $('err').textContent=e.message;$('status').textContent='';$('results').hidden=true;
    return;
  }
  try{
    const m=await attention;
    if(my!==seq)return;
    if(!(m.rows>0&&m.cols>0&&m.values&&m.values.length===m.rows*m.cols))throw new Error('malformed attention grid');
    map=m;draw();
    $('status').textContent='';
  }catch(e){
    if(my===seq)$('status').textContent='No attention map: '+e.message;
  }
}

function show(preds){
  const ol=$('preds');
  for(const p of preds){
    const li=document.createElement('li');li.className='prediction';
    const l=document.createElement('span');l.className='label';l.textContent=p.label;l.title=p.label;
    const tr=document.createElement('span');tr.className='track';tr.setAttribute('aria-hidden','true');
    const b=document.createElement('span');b.className='bar';b.style.display='block';
    b.style.width=(100*Math.min(1,Math.max(0,p.score))).toFixed(2)+'%';tr.append(b);
    const s=document.createElement('span');s.className='score';s.textContent=(100*p.score).toFixed(1)+'%';
    li.append(l,tr,s);ol.append(li);
  }
}

// Jet-like colour of t in [0,1], as heat_colour in vit-classify.
function jet(t){const c=x=>Math.min(1,Math.max(0,1.5-Math.abs(4*t-x)));return[c(3),c(2),c(1)]}

function draw(){
  if(!map||!img.complete||!img.naturalWidth)return;
  const r=img.getBoundingClientRect(),W=Math.round(r.width*devicePixelRatio),H=Math.round(r.height*devicePixelRatio);
  if(!W||!H)return;
  const gh=map.rows,gw=map.cols,g=map.values;
  let lo=Infinity,hi=-Infinity;for(const v of g){lo=Math.min(lo,v);hi=Math.max(hi,v)}
  heat.width=W;heat.height=H;heat.style.width=r.width+'px';heat.style.height=r.height+'px';
  const ctx=heat.getContext('2d'),d=ctx.createImageData(W,H),px=d.data;
  for(let y=0;y<H;y++){
    const gy=Math.min(Math.max((y+.5)*gh/H-.5,0),gh-1),y0=Math.floor(gy),y1=Math.min(y0+1,gh-1),fy=gy-y0;
    for(let x=0;x<W;x++){
      const gx=Math.min(Math.max((x+.5)*gw/W-.5,0),gw-1),x0=Math.floor(gx),x1=Math.min(x0+1,gw-1),fx=gx-x0;
      const v=(1-fy)*((1-fx)*g[y0*gw+x0]+fx*g[y0*gw+x1])+fy*((1-fx)*g[y1*gw+x0]+fx*g[y1*gw+x1]);
      const t=hi>lo?(v-lo)/(hi-lo):0,c=jet(t),i=4*(y*W+x);
      px[i]=255*c[0];px[i+1]=255*c[1];px[i+2]=255*c[2];px[i+3]=255*(.25+.45*t);
    }
  }
  ctx.putImageData(d,0,0);
  heat.dataset.drawn=gh+'x'+gw;
}
</script></body></html>
)HTML";
    return html;
}

}  // namespace serve
