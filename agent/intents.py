"""Understanding a PM's question without a language model: intent, metric, step, segment, period, comparison.

The intent is scored: every cue a question matches adds its weight, and the best-scoring
intent wins (ties go to the intent listed first). Slots are read against the data's own
vocabulary (agent/slots.py), periods against its last day (agent/timewords.py).

>>> v = Vocabulary(dimensions={"platform": ["android", "ios", "web"], "country": ["DE", "US"]},
...                data_end="2026-11-23",
...                steps=["view_item", "add_to_cart", "begin_checkout", "add_payment_info", "purchase"])
>>> q = parse("Why did checkout conversion drop last week on iOS?", v)
>>> q.intent, q.period, q.segment, q.premise
('why_change', 'last_7_days', {'platform': 'ios'}, 'drop')
>>> parse("and in Germany?", v, previous=q).segment
{'country': 'DE'}
>>> parse("Which segments drop off at payment?", v).step
'add_payment_info'
>>> q = parse("compare this week to last week on mobile", v)
>>> q.intent, q.period, q.compare, q.segment
('trends', 'last_7_days', '2026-11-09..2026-11-16', {'platform': ['android', 'ios']})
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from functools import cached_property

from agent import scope, slots
from agent.timewords import before, comparison
from agent.timewords import period as period_of

Segment = dict[str, str | list[str]]

# words for a metric moving, in any direction
MOVES = (r"(drop\w*|fall\w*|fell|declin\w*|down|chang\w*|lower|worse|increas\w*|up|spik\w*|ris\w*|rose|tank\w*|"
         r"jump\w*|dip\w*|slump\w*|sink\w*|sank|grow\w*|grew|creep\w*|moved|shift\w*|plummet\w*|soar\w*|climb\w*|"
         r"better|improv\w*|slid\w*|slip\w*|shot|skyrocket\w*|nosediv\w*|crater\w*|collaps\w*|surg\w*|"
         r"through the roof|south|crept|off a cliff)")
# (intent, weighted cues), in priority order: a tie goes to the intent listed first.
CUES: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = (
    ("show_sql", ((r"\b(show|see|give|what)\b.*\b(sql|query behind|queries behind)\b", 5), (r"^sql\??$", 5),
                  (r"\bwhich (sql|query)\b", 5))),
    ("run_sql", ((r"^\s*(with|select)\b", 10),)),
    ("help", ((r"^(help|\?)$", 5), (r"\bwhat can you (do|answer)\b", 5), (r"\bhow do i use\b", 5))),
    ("unsupported", ((r"\b(predict|forecast|project|projected|projection|next (year|quarter|month)|weather|poem|joke|"
                      r"stock price|translate|app store|star rating|reviews|support (chats?|tickets?)|margins?|"
                      r"haiku|limerick|song|sonnet|essay|estimat\w*|mrr|arr|recurring revenue|ltv|lifetime value|"
                      r"customer (service|care)|call cent(er|re)|phone calls?|deliver(y|ies)|refund\w*|chargebacks?|"
                      r"profit\w*|unsubscrib\w*|push (notifications?|messages?)|market share|salar(y|ies)|payroll|"
                      r"headcount|budgets?|"
                      r"cogs|cost of goods|csat|customer satisfaction|satisfaction scores?|(sales )?tax(es)?|vat|"
                      r"out of stock|in stock|stock levels?|inventory|followers|demographics?|genders?|ages?|"
                      r"release notes|changelog|contracts?|renewals?|warehouses?|fulfil+ment|couriers?|"
                      r"world cup|recipe|sales ?(reps?|representatives?|people|team)|crm|deals? (closed|won|lost)|"
                      r"competitors?|competition|rivals?)\b|"
                      r"\bclos(e|ed|ing) (\w+ ){0,3}deals?\b", 5),
                     (r"\b(instagram|facebook|tiktok|twitter|linkedin|youtube|snapchat|pinterest|tv|radio|billboard)"
                      r" (ads?|campaigns?|posts?|likes)\b|\b(ctr|click[- ]through rate|impressions|cpm)\b.*\b(ads?|"
                      r"campaigns?|banners?|creatives?)\b", 5),
                     (r"\bwhat will (\w+ ){1,3}(be|look like|hit|reach)\b", 5),
                     (r"\b(ad spend|spend on (google|facebook|meta|ads|marketing|campaigns)|marketing (budget|spend)|"
                      r"cost per (click|acquisition)|cac)\b", 5),
                     (r"\b(draft|write|compose)\b.*\b(message|email|post|tweet|announcement|memo|slack|blog|"
                      r"press release)\b", 5),
                     (r"\bwill (we|it|they|there)\b.*\b(next|tomorrow|coming)\b|\bnext (week|month)\b", 5),
                     (r"\b(orders?|items?|products?|purchases?) (were |was |got |being |that were )?"
                      r"(returned|sent back)\b", 5),
                     (r"\bwho (is|are|'s) (the |our )?(\w+ ){0,3}(manager|pm|owner|lead|head|responsible|in charge)\b",
                      5))),
    ("explain_item", ((r"\b(tell me more|more (about|on|detail)|explain|details? (on|of|about)|drill (into|down)|dig "
                       r"into|expand on|elaborate|go deeper|deeper (on|into)|zoom in|unpack|what('s| is) the story "
                       r"(with|behind|on))\b.*(#\s?\d+|\b(number \d+|item \d+|\d{1,2}(st|nd|rd|th)|first|"
                       r"second|"
                       r"third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|top|last|that|this|it|one)\b)", 4),
                      (r"\b((walk|talk|run) (me |us )?through|what'?s (up|going on|the deal|the story) with|break down|"
                       r"say more about|"
                       r"double[- ]click (on|into))\b.*(#\s?\d+|\b(number|item|suggestion) \d+|"
                       r"\b\d{1,2}(st|nd|rd|th)\b|"
                       r"\b(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|top) (one|item|suggestion|"
                       r"issue|problem|fix)\b)", 4),
                      (r"\bwhat('s| is| was)( the)? (#\s?\d+|number \d+|item \d+|(\d{1,2}(st|nd|rd|th)|first|second|"
                       r"third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|top) (one|item|suggestion|issue|problem)) "
                       r"about\b", 5),
                      (r"\bwhy('s| is| was| did)\b.*(#\s?\d+|\bnumber \d+).*\b(top|first|above|ahead|rank)", 5),
                      (r"\bwhat('s| is) behind (the )?(top|first|second|third|#\s?\d|number \d|item)", 6),
                      (r"\bwhy (is|was|did) (that|it|this|#\s?\d+|number \d+|the (first|second|third|top) one|the top"
                       r" (item|suggestion|one)).*\b(rank|first|top|prioriti[sz]|ahead|above|higher)", 5),
                      (r"^(what about|and|ok(ay)?,?)? ?(#\s?\d+|number \d+)\??$", 4))),
    ("scan", ((r"\bfix first\b", 2), (r"\bpriorit", 1.5),
              (r"\bwhat should (we|i) (fix|work on|improve|do|tackle)\b", 2),
              (r"\b(top|biggest|main|worst) (issues|problems|frictions|opportunities|pain points)\b", 2),
              (r"\bwhere do (users|people|customers) struggle\b", 1.5), (r"\b(suggest|recommend)", 1),
              (r"\bquick wins?\b", 2), (r"\bfrictions?\b", 1), (r"\bwhat('s| is) broken\b", 1.5),
              (r"\bpain points?\b", 1.5), (r"\bwhat (to|should we) (build|change|tweak)\b", 1.5),
              (r"\b(biggest|top|main|worst) (\w+ )?(killers|blockers|leaks|issues|problems)\b", 2.5),
              (r"\bwhat would you (work on|fix|do|prioriti|tackle)|\bwork on next\b", 2.5),
              (r"\bhurting (us )?(the )?most\b|\b(backlog|ranked list|to-?do list) of (fixes|issues|tweaks)\b", 2.5),
              (r"\btop (\d+|two|three|four|five|ten) (things|items|fixes|problems|issues)\b|\bthings to fix\b", 2.5),
              (r"\bmoney on the table\b|\blow[- ]hanging fruits?\b", 3),
              (r"\b(biggest|single|main|most important|first|one|only) (thing|things|issue|problem|fix)\b.{0,25}\b"
               r"(should|could|need to|must|to) (fix|tackle|address|work on|improve)\b|"
               r"\b(fix|tackle|address|improve) (only )?(one|a single) thing\b", 3),
              (r"\b(fix|bug|issue|product) backlog\b|\bbacklog (of|for)\b|"
               r"\b(build|make|draft) (me |us )?a backlog\b", 3),
              (r"(#\s?1|\bnumber one|\bno\.? ?1|\b(top|biggest|main)) (opportunit\w*|priorit\w*)", 2.5),
              (r"\b(deserve|deserves|need|needs|require|requires) (our |the team's |my |some )?attention\b", 2.5),
              (r"\bwhere should (we|i|the team) (focus|start|look|invest|put (our|my) (time|effort))\b", 2.5),
              (r"\b(opportunit\w+|issues?|problems?|fixes|frictions?) rank\w*|\brank\w* (of )?(our )?(opportunit\w+|"
               r"issues|problems|fixes)\b|\btop \d+ (problems|issues|opportunities|fixes|frictions)\b", 2.5))),
    ("tracking", ((r"\btracking\b", 1.5), (r"\binstrumentation\b", 1.5), (r"\bdata quality\b", 2),
                  (r"\bevent quality\b", 1.5), (r"\btracking plan\b", 1))),
    ("schema", ((r"\b(schema|tables?|columns?|fields)\b", 1), (r"\bwhat data\b", 1), (r"\bwhich events\b", 1))),
    ("experiments", ((r"\bexperiments?\b", 1.5), (r"\ba/?b\b", 1.5), (r"\bab tests?\b", 1.5), (r"\bvariants?\b", 1),
                     (r"\bsrm\b", 1.5), (r"\bsample ratio\b", 1.5), (r"\btests? results?\b", 1),
                     (r"\b(won|winner|winning|losing)\b.*\btest\b", 1), (r"\btests?\b", 1), (r"\blift(s|ed)?\b", 1),
                     (r"\b(treatment|control)( groups?| arms?| variants?| cells?)?\b.*\b(vs\.?|versus|against|and|or)\b"
                      r"|\b(treatment|control) (groups?|arms?|cells?)\b", 2),
                     (r"\bstat(istical(ly)?|s)?[- ]sig(nificant|nificance)?\b", 2))),
    ("search", ((r"\bsearch", 1.5), (r"\bzero[- ]results?\b", 1.5), (r"\bqueries\b", 1), (r"\bquery\b", 1),
                (r"\bcan'?t find\b", 1),
                (r"\blook(s|ing|ed)? for\b.{0,40}\b(not|n'?t|never|without|fail\w* to) (find|finding|found|get|"
                 r"getting)\b", 2.5),
                (r"\b(leav\w*|left|exit\w*|bounc\w*|quit\w*)\b.{0,30}\b(after|from) search\w*|\bsearch exits?\b",
                 1))),
    ("cart", ((r"\bcart abandon", 2), (r"\babandon", 1.5),
              (r"(?<!add to )(?<!add-to-)(?<!added to )(?<!adding to )\bcarts?\b", 1), (r"\bbaskets?\b", 1),
              (r"\bstart(ed)? (the )?checkout\b.*\b(don'?t|do not|never|didn'?t) (finish|complete)", 2.5),
              (r"\bbail(ed|s)? (out )?before (ordering|buying|paying|paying)\b", 2.5),
              (r"\b(begin|began|start\w*) checkout\b.*\b(never|don'?t|didn'?t) (pay|finish|complete|order|buy)", 3),
              (r"\bcheckouts? (that|which) (never|didn'?t|did not|don'?t|do not)\b", 3),
              (r"\b(walk|wander)(s|ed|ing)? (away|off)\b", 2),
              (r"\b(started|begun|initiated|opened) checkouts?\b.*\b(dropped|abandoned|lost|unfinished|incomplete|"
               r"never (finished|completed))\b|\bcheckouts? (that|which) (get|got|are|were) (dropped|abandoned|lost)\b",
               3),
              (r"\bleav\w* (their |the |a |full )?carts?\b|\bleft behind\b|\bleft in (the|their) carts?\b", 1.5))),
    ("retention", ((r"\bretention\b", 2), (r"\bretain", 1.5), (r"\bcohorts?\b", 1),
                   (r"\b(come|coming|came|comes) back\b|\b(were|was|are|is|be) back\b", 1.5),
                   (r"\brepeat (visits?|visitors?|usage|users?|rate)\b|\breturn visits?\b", 2),
                   (r"\bsign[- ]?ups\b|\bregistered\b|\bstick(s|ing)? with us\b", 1), (r"\breturning\b", 1),
                   (r"\bchurn", 1.5), (r"\breturn(ing)? users\b", 1.5), (r"\bsigned up\b", 0.5),
                   (r"\bstick(ing)? around\b|\bstill (around|here|with us)\b", 1.5),
                   (r"\b(keep|keeping|kept|hold on to|holding on to) (our |the |new )?(users|customers|people|"
                    r"shoppers|signups|buyers)( around)?\b", 2.5),
                   (r"\bstick(y|ier|iness)\b|\bstill active\b|\breturn rate\b", 2.5),
                   (r"\b(keep|kept|keeps|still) (using|coming|visiting|buying|ordering)\b", 2),
                   (r"\b(a|one|two|three|four|\d) weeks? later\b|\b(one|two|three|four|\d)[- ]week retention\b", 2))),
    ("incidents", ((r"\bwhat (broke|is broken|went wrong|went sideways|changed)\b", 1.5),
                   (r"\b(downtime|disruptions?|service (issues?|interruptions?))\b", 1.5),
                   (r"\b(is|was|are|were) (anything|something|everything|(the )?(site|app|website|store|checkout|api|"
                    r"search|payments?)) (\w+ )?down\b", 2),
                   (r"\b(anything|something) (go|gone|went|going) (wrong|sideways|down)\b", 1.5),
                   (r"\b(did|has|have) (anything|something) "
                   r"(break|broken|go wrong|gone wrong|change|changed)\b", 1.5), (r"\bincidents?\b", 1.5),
                   (r"\boutages?\b", 1.5), (r"\bwhen did .* (start|begin|stop|drop|fall|break|spike)", 1.5),
                   (r"\b(is|was) (it|that|this) fixed\b", 1.5), (r"\b(has|did) (it|that|this) recover", 1.5),
                   (r"\brecovered\b", 1), (r"\bis it (still )?(broken|ongoing)\b", 1.5), (r"\bbroke\b", 1),
                   (r"\b(is|are) .*\bbroken\b", 1.5), (r"\bdown\b.*\bfor\b", 0.3),
                   (r"\bon fire\b|\bstill (broken|burning|down|failing)\b", 2),
                   (r"\b(any|were there|was there|there were|had) (\w+ )?(fires|firefights?|hiccups?|blackouts?|"
                    r"meltdowns?)\b", 2.5),
                   (r"\b(did|has|have|is) (anything|something) (go(ne)? down|went down|blow(n)? up|blew up|crash\w*|"
                    r"fail\w*|explode\w*|melt\w* down)\b", 2))),
    ("release", ((r"\breleases?\b", 1.5), (r"\bregression", 1.5), (r"\bnew version\b", 1),
                 (r"^(?!.*\bfunnel\b).*\bapp versions?\b", 1), (r"\bupdates? (broke|break)", 1.5),
                 (r"\b(app )?updates?\b.*\b(worse|hurt|broke|break|making)\b", 1.5),
                 (r"\bversions?\b.*\b(converts?|converting) (worse|better)\b|\bpredecessor\b|"
                  r"\bprevious version\b", 2),
                 (r"\b(bad|broken|buggy) (builds?|versions?|releases?)\b|\bbuilds?\b.*\b(shipped|hurt|broke|worse)\b|"
                  r"\brollouts?\b|\bbuilds?\b.*\b(tank\w*|crater\w*|regress\w*|hurt|damag\w*)\b", 2.5),
                 (r"\b(version|release|build)[- ]over[- ](version|release|build)\b", 2.5))),
    ("errors", ((r"\berror\w*", 1), (r"\bcrash", 1.5), (r"\bbugs?\b", 1), (r"\bslow", 1), (r"\bload(ing)? times?\b", 1),
                (r"\b(laggy|lag|sluggish|buggy|glitch\w*)\b", 1.5),
                (r"\b(stable|stability|unstable|instability|flaky|flakiness)\b", 1.5),
                (r"\bspeed\b", 1), (r"\blatency\b", 1), (r"\bperformance\b", 1), (r"\bpage load\b", 1),
                (r"\btime ?outs?\b|\bfailures?\b|\bfailed requests?\b|\bexceptions?\b", 1),
                (r"\b(error\w*|crash\w*|slow\w*|load(ing)? times?)\b.{0,20}\b(on|at|in) (the )?[\w-]+ "
                 r"(page|step|screen)\b", 1.5))),
    ("why_change", ((rf"\bwhy\b.*\b{MOVES}\b", 5), (rf"\b{MOVES}\b.*\bwhy\b", 5),
                    (r"\bwhat('s| is)? (caused|causing|explains|drove|driving|behind)\b", 4),
                    (rf"\bwhat (made|makes|led|leads)\b.*\b{MOVES}\b", 5),
                    (rf"\b{MOVES}\b.*\bwhat('s| is)? (happened|going on|up with)\b", 4),
                    (r"\bwhat('s| is) going on\b", 1), (r"\bwhat did we do (right|wrong)\b", 5),
                    (r"\bwhat('s| is) (dragging|pulling|pushing) .* (down|up)\b", 5))),
    ("metric", ((r"\bhow (much|many)\b.*\b(revenue|sales|orders|purchases|money|gmv|active users|sessions|traffic|"
                 r"visits)\b", 2),
                (r"\bhow many (people|users|customers|folks|ppl) (bought|purchased|ordered)\b", 2.5),
                (r"\b(order|revenue|session|buyer|search)s? (count|volume|total|numbers)\b|\blifetime\b", 2),
                (r"\b(number|count|total|tally) of (searches|orders|sessions|buyers|visits|purchases)\b", 2),
                (r"\bhow much did .* (bring in|make|earn|generate)\b|\bbr(ing|ought) in\b", 2.5),
                (r"\bturning (sessions|visits|visitors|users) into (orders|buyers|purchases)\b", 2),
                (r"\b(add[- ]to[- ]cart|purchase|checkout) rate\b.*\b(for|on|in|among)\b", 1.5),
                (r"\bwhat('s| is| was)( the| our)? (conv\w*|purchase|checkout|add[- ]to[- ]cart) rate\b", 2),
                (r"\bhow much\b.*\b(customers|users|people|buyers|shoppers)\b.*\bspen[dt]\b", 2),
                (r"^(?!how )(\w+ ){0,3}(conv\w*|conversion rate|revenue|sales|orders|aov|sessions|visits|add to cart "
                 r"rate|add-to-cart rate|average order value|buyers)\b.{0,30}\b(by|per|vs|versus)\b(?! (day|week|hour))"
                 r"(?!.*\b(trend|over time|daily)\b)", 2.2),
                (r"^(?!how )(\w+ ){0,2}(revenue|sales|orders|aov|average order value)\b"
                 r"(?!.*\b(trend|over time|daily|week over week|wow|anomal)\w*)", 1.2),
                (r"\btraffic\b(?! sources?)(?!.*\b(funnel|conver\w*|abandon\w*|retention|search\w*|errors?|"
                 r"experiments?|why)\b)", 0.9),
                (r"\b(did|do|have|are) we (sell|sold|selling|earn|make|made|do|bring in|generate) "
                 r"(more|less|fewer)\b|\bwe (sold|made|earned|brought in) (more|less)\b", 2),
                (r"\b(total|sum of)\b.*\b(revenue|sales|orders|purchases|gmv|visits|sessions|buyers)\b", 2),
                (r"\bwhat (was|were|is|are) (our|the)\b.*\b(revenue|sales|orders|purchase rate|conversion rate)\b",
                 1.2))),
    ("trends", ((r"\btrends?\b", 1.5), (r"\bover time\b", 1.5), (r"\b(per|by|each|a) day\b", 2.5),
                (r"\b(going|trending|heading) (up|down|south|north)\b|\bclimbing\b", 2), (r"\b(chart|plot|graph)\b", 2),
                (r"\bhow (has|have|did|does|is) .*\b(mov\w*|chang\w*|evolv\w*|develop\w*|trend\w*|been doing)\b", 2),
                (r"\b(get|gets|getting|got|gotten|been getting) (better|worse)\b|"
                 r"\b(improving|declining|deteriorating)\b", 1.5),
                (r"\b(weird|unusual|odd|strange|abnormal|outliers?|blips?)\b", 2.5),
                (r"^(\w+ )?did (the |our )?(conv\w*|revenue|sales|orders|aov|average order value|dau|active users|"
                 r"sessions|traffic|visits|searches|buyers|add[- ]to[- ]cart rate|error rate)\b.{0,30}\b(tank\w*|"
                 r"crater\w*|nosedive|plummet|dip|drop|fall|slump|sink|spike|jump|surge|soar|climb|rise|shrink)\b", 2),
                (r"\bweek[- ]over[- ]week\b", 1.5), (r"\bwow\b", 1.5),
                (r"\b(curve|time ?series|timeline|sparkline|trajectory)\b", 2),
                (r"\bday[- ](to|by|over)[- ]day\b", 2.5),
                (r"\b(is|are|has|have|was|were)\b.*\b(slipping|sliding|falling|dropping|rising|growing|declining|"
                 r"creeping|crept|climbing|shrinking|tanking|sinking|recovering)\b", 2),
                (r"\bdaily\b(?! active)", 1), (r"\banomal", 1.5), (r"\bspikes?\b", 1),
                (r"\bhow (is|are|did) .*\b(revenue|orders|active users|dau)\b", 1),
                (r"\b(revenue|dau|active users|add[- ]to[- ]cart rate)\b", 1), (r"\bcompar", 0.8),
                (r"\b(this|last) (week|month)\b.*\b(vs|versus|compared|to|against)\b.*\b(last|previous) "
                 r"(week|month)\b", 1.5))),
    ("dropoffs", ((r"\bwhy\b", 0.8), (r"\bwhich (\w+ )?segments?\b", 2), (r"\bwho drops\b", 1.5),
                  (r"\bdrop[- ]?offs?\b", 1.5),
                  (r"\broot cause\b", 1.5),
                  (r"\bwhere (do|did|are) (\w+ ){0,3}(drop|dropping|fall out|falling out|leave|leaving|give up|"
                   r"giving up|bail)", 2.5), (r"\bwho('s| is| are)? ?(drop|dropping|drops|leaving|bails?|struggl)", 2),
                  (r"\b(which|what) (user )?groups?\b", 2), (r"\bworst at\b", 1),
                  (r"\b(any|which|what|specific) (\w+ )?(groups?|slices?|segments?|audiences?)\b", 2.5),
                  (r"\bslices?\b", 1.5),
                  (r"\b(kinds?|types?|sorts?) of (users|customers|shoppers|people|visitors|buyers)\b|"
                   r"\buser types\b", 2),
                  (r"\b(give|gives|giving|gave) up\b|\bfall(s|ing)? off\b(?! a cliff)|\bfell off\b(?! a cliff)|"
                   r"\bunderperform\w*", 1.5),
                  (r"\b(bad|worst|poor|terrible|weak) at (finishing|completing|getting|paying|checking|converting|"
                   r"reaching)\b", 2), (r"\b(is|are) there (a|any) (\w+ )?(groups?|segments?|cohorts?)\b", 2.5),
                  (r"\bbetween (\w+ ){1,4}and (\w+ ){0,2}(checkout|payment|order|cart|purchas\w*|paying|"
                   r"buying)\b", 1.5),
                  (r"\b(getting )?stuck\b|\bleak(s|ing|ed|age)?\b", 2),
                  (r"\b(can'?t|cannot|don'?t|doesn'?t|never|fail to) (get|make it|go) (past|through|beyond)\b", 2.5),
                  (r"\bwho (fails|doesn'?t|does not|never)\b", 2.5),
                  (r"\bwho('s| is| are)? not (getting|making it|reaching|going|moving)\b", 2.5),
                  (r"\b(which|what) (users|customers|shoppers|people|visitors|buyers)\b.*\b(fall\w*|fell|drop\w*|"
                   r"bail\w*|quit\w*|leav\w*|stuck|give up|giving up|never)\b", 2.5),
                  (r"\b(which|what) cohorts? of (users|customers|shoppers|people|visitors|buyers)\b", 2.5),
                  (r"\b(never|don'?t|do not|doesn'?t|didn'?t) (add|reach|get to|start|pay|order|buy|check ?out)\b", 1),
                  (r"\babandon\w* (at|the (flow|funnel|journey))\b|\bby segment\b|\bthe drop between\b", 2.5),
                  (r"\bfail(s|ing)? to (complete|finish|reach)\b", 1),
                  (r"\b(exit\w*|leav\w*|drop\w* out of|fall\w* out of) (the )?funnel\b|\bsegment breakdown\b", 2),
                  (r"\bsegments?\b", 1), (r"\bstruggl", 1.2), (r"\b(trouble|hard time|difficult)", 1),
                  (r"\bdrop(ping)? out\b", 1))),
    ("funnel", ((r"\bfunnel\b", 2), (r"\bconver", 1), (r"\bhow many (users|people|customers)\b", 1), (r"\bstep\b", 1),
                (r"\b(purchase|checkout|completion|order|buy) rate\b", 1.2), (r"\bcheckout completion\b", 1.2),
                (r"\blosing (shoppers|users|customers|people|buyers)\b", 1.5),
                (r"\b(bleed\w*|shed\w*|hemorrhag\w*) (shoppers|users|customers|people|buyers|visitors)\b", 2.5),
                (r"\bhow (is|are) (.* )?(doing|performing)\b", 0.9),
                (r"\bend up (buying|purchasing|ordering|converting)\b", 1.5), (r"\bwhat (%|percent|share) of\b", 0.6),
                (r"\b(people|users|customers|shoppers|everyone|everybody|anyone|visitors|folks|those) who "
                 r"(viewed|added|reached|started|made it|looked at|browsed|hit|visited|saw|opened|landed on)\b", 1.2),
                (r"\bleaky\b", 1.5), (r"\bhow many\b.*\b(checked out|paid)\b", 1),
                (r"\b(step|stage)[- ]by[- ](step|stage)\b", 2),
                (r"\bmade it (all the way|through|to|from)\b", 1.2), (r"\b(got|get|gets|reach|reached) to\b", 1),
                (r"\bhow many\b.*\b(ended up|went on to|got all the way|made it)\b", 1.5),
                (r"\b(landed on|viewed|viewing|view|looked at|browsed) (at least one |an? |the )?(product|item)", 1),
                (r"\bwhat fraction of\b", 0.6),
                (r"\ball the way\b", 1), (r"\bend[- ]to[- ]end\b|\bbecame (buyers|customers)\b|\bviewers\b", 2.5),
                (r"\bfrom (the |a )?(product|browsing|view\w*)\b.*\bto (an? )?(paid )?"
                 r"(order|purchase|pay\w*|buy\w*|checkout)", 2.5), (r"\b(got|went|made it) through to\b", 2),
                (r"\b(flow|funnel|journey|process) converts?\b|\b(checkout|purchase|shopping|buying) (flow|journey)\b",
                 1.5))),
)
# The words of the cues: never corrected, and targets of correction.
# (a stem a cue extends, `slip\w*` or `deliver(y|ies)`, is no word to correct to)
CUE_WORDS = {w for _, cues in CUES for pattern, _ in cues
             for w in re.findall(r"[a-z]{4,}", re.sub(r"\\[a-zA-Z]", " ", re.sub(r"[a-z]+(?=\\w|\()", " ", pattern)))}
FOLLOW_UP = re.compile(r"^\s*(and|what about|how about|same (\w+ )?(for|but|on|in)|same thing|now for|only for|"
                       r"just for|also for|"
                       r"(now )?(split|break|cut|slice) (it|that|this|them)|now (by|per)|"
                       r"and for|switch(ed)? to|swap (to|in)|change (it )?to|same question for|"
                       r"then for|ok(ay)?,? (and|what about)|what if|compare (it |that |this )?(with|to|against))\b",
                       re.IGNORECASE)
PREMISES = (("drop", r"\b(drop|dropped|dropping|fall|fell|falling|decline|declined|declining|down|lower|worse|dip|"
                     r"dipped|"
                     r"dipping|slump\w*|sank|sinking|plummet\w*|bad|poor|weak|terrible|"
                     r"tank|tanked|decrease|decreased|shrink\w*|shrank|slip\w*|slid\w*|nosediv\w*|crater\w*|collaps\w*|"
                     r"fewer|less|south|dragg\w*|lost|losing)\b"),
            ("rise", r"\b(rise|rose|rising|increase|increased|increasing|up|higher|better|spike|spiked|jump|jumped|"
                     r"grow|grew|growing|creeping up|creep up|soar\w*|great|good|strong|climb\w*|improv\w*|shot up|"
                     r"skyrocket\w*|surg\w*|through the roof|more (\w+ )+than|north|crept up)\b"),
            ("break", r"\b(broken|break|broke|failing|struggl\w*)\b"))
ORDINALS = {"first": 1, "top": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
            "eighth": 8, "ninth": 9, "tenth": 10}
# Metrics whose questions the funnel, trends, cart and search analyses answer in more depth.
ANALYSED_ELSEWHERE = {"conversion_rate", "orders", "revenue", "cart_abandonment", "zero_result_rate",
                      "add_to_cart_rate", "error_rate"}
# Words asking for a metric as a series over time, or how it moves ("is AOV slipping?").
SERIES = re.compile(
    r"\b(trend\w*|over time|daily(?! active)|per day|by day|a day|each day|day[- ](to|by|over)[- ]day|chart|plot|graph|"
    r"curve|time ?series|timeline|sparkline|evolv\w*|develop\w*|week[- ]over[- ]week|wow|getting (better|worse)|"
    r"improving|declining|spikes? in|dips? in|blips? in|anomal\w* in|(weird|unusual|odd|strange|abnormal) in)\b|"
    r"\b(is|are|has|have|was|were)\b.*\b(slipping|sliding|falling|dropping|rising|growing|"
    r"declining|creeping|crept|climbing|shrinking|tanking|sinking|recovering|picked up|picking up|bounced back|"
    r"ticked (up|down))\b|\boutliers?\b|\btrajectory\b")
# Leaving the funnel at a step ("dropping out at checkout", "give up before paying").
DROP_AT = re.compile(r"\b(drop\w*|fall\w*|fell|give up|giving up|gave up|bail\w*|quit\w*|stuck|los(e|ing|t)|leav\w*)"
                     r"( out| off)?\b.{0,25}\b(at|before|during)\b")
# What an analysis reports itself: a question about another metric of the catalog is that metric's
# ("share of cart adders who bought" is not the cart abandonment analysis).
REPORTED = {"cart": {"cart_abandonment"}, "search": {"searches", "zero_result_rate"}}
# Metrics for which a lower value is better: "improved" means it fell.
LOWER_IS_BETTER = re.compile(r"abandon|error|zero.result|bounce|churn|latency|load|crash")
DEFINITION = re.compile(
    r"\bhow (?:is|are) (?:the |our )?(.+?) (?:defined|calculated|computed|measured)\b"
    r"|\bhow do (?:we|you) (?:define|calculate|compute|measure) (?:the |our )?(.+?)\s*\??$"
    r"|\b(?:definition of|define) (?:the |our )?(.+?)\s*\??$"
    r"|\bwhat (?:is|does) (?:the )?(?:metric )?(.+?) mean\??$")


@dataclass(frozen=True)
class Vocabulary:
    """What the data contains: segment values per dimension, experiments, and its end date."""

    dimensions: dict[str, list[str]] = field(default_factory=dict)
    experiments: dict[str, str] = field(default_factory=dict)  # experiment_id -> name
    data_end: str | None = None  # the day after the last event
    metrics: dict[str, str] = field(default_factory=dict)  # metric key -> name (the metric catalog)
    steps: list[str] = field(default_factory=list)  # the event map's default funnel
    funnel_name: str = "main"  # and its name
    concepts: dict[str, str] = field(default_factory=dict)  # concept (country, version...) -> the data's dimension

    def dimension(self, concept: str) -> str | None:
        """The data's dimension for a concept; a dimension of that very name when the map says nothing."""
        return self.concepts.get(concept) or (concept if concept in self.dimensions else None)

    @cached_property
    def known(self) -> set[str]:
        """Words spelling correction may correct to."""
        return slots.known_words(self.dimensions, self.steps, self.metrics) | CUE_WORDS | {
            w for name in self.experiments.values() for w in re.findall(r"[a-z]+", str(name).lower())}

    @property
    def end(self) -> date | None:
        return date.fromisoformat(self.data_end[:10]) if self.data_end else None


@dataclass(frozen=True)
class Question:
    """A parsed question: what to compute."""

    text: str
    intent: str
    period: str = "all"
    segment: Segment = field(default_factory=dict)
    breakdown: str | None = None
    step: str | None = None
    metric: str = "conversion_rate"
    experiment_id: str | None = None
    week_n: int = 1
    entity: str | None = None  # sessions or users when the question says which; each tool's default otherwise
    sql: str | None = None
    metric_name: str | None = None
    follow_up: bool = False
    compare: str | None = None        # the period compared with, when the question names one
    signup_period: str | None = None  # only users who signed up in it ("people who signed up in late September")
    premise: str | None = None        # what the question presumes: drop, rise or break
    item: int | None = None           # "tell me more about the second one": a ranked item of an earlier answer
    scores: dict[str, float] = field(default_factory=dict, compare=False, repr=False)


def intent_scores(q: str) -> dict[str, float]:
    """Every intent with a positive score, best first (ties in priority order)."""
    scores = {intent: sum(w for pattern, w in cues if re.search(pattern, q)) for intent, cues in CUES}
    return dict(sorted(((i, s) for i, s in scores.items() if s > 0), key=lambda kv: -kv[1]))


def _premise(q: str, intent: str | None, metric: str | None = None) -> str | None:
    if intent not in {"why_change", "incidents", "dropoffs", "funnel", "trends", "metric"}:
        return None
    if metric and LOWER_IS_BETTER.search(metric) and (
            m := re.search(r"\b(better|improv\w*|recover\w*)\b|\b(worse|worsen\w*|deteriorat\w*)\b", q)):
        return "drop" if m.group(1) else "rise"  # "cart abandonment got better": it fell
    return next((name for name, pattern in PREMISES if re.search(pattern, q)), None)


def _item(q: str) -> int | None:
    if m := re.search(r"#\s?(\d{1,2})\b|\b(?:number|item|suggestion|no\.?) (\d{1,2})\b|\b(\d{1,2})(?:st|nd|rd|th)\b",
                      q):
        return int(m.group(1) or m.group(2) or m.group(3))
    return next((n for word, n in ORDINALS.items() if re.search(rf"\b{word}\b", q)), None)


def _week_n(word: str) -> int:
    return int(word) if word.isdigit() else ORDINALS.get(word) or {"a": 1, "one": 1, "two": 2, "three": 3,
                                                                   "four": 4, "fortnight": 2}[word]


def _signup_period(q: str, end: date | None) -> str | None:
    """The signup period of 'people who signed up in late September', 'the Q3 signups' or 'signed up in week 42'."""
    found = list(re.finditer(
        r"(.{0,25})\b(?:signed up|sign[- ]?ups?|joined|registered|new users|cohorts?)\b(?=(.{0,40}))", q))
    if not found:
        return None
    m = next((m for m in found[1:] if m.group(2).strip() and period_of(m.group(2), end)), found[0])
    ahead = re.split(r"\b(?:after|later|within)\b", m.group(2))[0]  # "signups still around after a fortnight"
    if end and (week := re.search(r"(?<!back )(?<!returned )(?<!retained )(?<!active )\b(?:in|during) week (\d{1,2})\b"
                                  r"(?! retention)", m.group(2))):  # not "came back in week 2"
        return f"{end.isocalendar().year}-W{int(week.group(1)):02d}"
    return (period_of(ahead, end) if ahead.strip() else None) or period_of(m.group(1).split(",")[-1], end)


def _iso_week(q: str, end: date | None) -> str | None:
    """"week 46" as an ISO week of the data's last year."""
    if end and (m := re.search(r"\bweek (\d{1,2})\b", q)):
        return f"{(end - timedelta(days=1)).isocalendar().year}-W{int(m.group(1)):02d}"
    return None


def _entity(q: str) -> str | None:
    """Users or sessions, when the question says which ("count users, not sessions", "by session")."""
    if re.search(r"\b(by|per|count(ing)?|in) users?\b|\busers?,? not sessions\b|\buser[- ]based\b", q):
        return "users"
    return "sessions" if re.search(r"\bsessions?\b", q) else None


def _abbreviations(q: str) -> str:
    """Everyday short forms spelled out: `wk2` -> `week 2`, `avg` -> `average`, `conv` -> `conversion`."""
    q = re.sub(r"\bwk\s?(\d)", r"week \1", q)
    q = re.sub(r"(?<![\d-])\bw(\d{1,2})\b", r"week \1", q)  # "W46", "W1 retention"
    q = re.sub(r"\bu\.s\.(?:a\.)?", "usa", q)  # "U.S. visitors", "the U.K."
    q = re.sub(r"\bu\.k\.", "uk", q)
    for short, full in (("wk", "week"), ("wks", "weeks"), ("avg", "average"), ("conv", "conversion"),
                        ("rev", "revenue"), ("mo", "month"), ("yday", "yesterday"), ("pls", "please"),
                        ("ppl", "people"),
                        ("basket value", "order value"), ("basket size", "order value"), ("cart value", "order value"),
                        (r"average basket(?![ -](?:abandon\w*|adders?|rate))", "average order value"),
                        ("gmv", "revenue"),
                        ("dropoffs", "drop-offs"), ("droppoffs", "drop-offs"), ("drop off", "drop-off"),
                        ("baskets", "carts"), ("basket", "cart"), ("actives", "active users"),
                        ("atc", "add to cart"), ("cvr", "conversion rate"),
                        ("trolleys", "carts"), ("trolley", "cart"), ("cr", "conversion rate"),
                        ("pdps?", "product page"),
                        ("perf", "performance"), ("turnover", "revenue"), ("takings", "revenue"),
                        ("transactions?", "orders"), ("paying customers", "buyers"), ("(unique )?purchasers", "buyers"),
                        ("ticket size", "order value"), ("average ticket", "average order value"),
                        ("(daily|weekly|monthly) uniques", r"\1 active users"), ("uniques", "active users"),
                        ("(empty|dead[- ]end|null|no[- ]results?) searches", "zero-result searches"),
                        ("zero[- ]hits?", "zero results"), ("sub-?groups", "groups"),
                        ("qtr", "quarter")):
        q = re.sub(rf"\b{short}\b", full, q)
    return q


def parse(text: str, vocabulary: Vocabulary, previous: Question | None = None) -> Question:
    """Parse one question; a follow-up ("and on iOS?") reuses the previous question's intent and slots."""
    raw = " ".join(text.lower().split())
    q = raw if re.match(r"^\s*(with|select)\b", raw) else slots.spell(_abbreviations(raw), vocabulary.known)
    if previous is not None and previous.intent == "retention":  # "and week 3?" asks for week-3 retention
        q = re.sub(r"\bweek[- ]?([1-9]|1[0-2])\b(?! retention)", r"week-\1 retention", q)
    v, end = vocabulary, vocabulary.end
    segment = slots.segment(q, v.dimensions, v.concepts, original=text)
    compared = comparison(q, end)
    breakdown = slots.breakdown(q, v.dimensions, v.concepts) or (None if compared else _compared_values(q, segment))
    named_values = segment  # "organic vs paid search": values compared, not words of the question ("search")
    segment = {k: x for k, x in segment.items() if k != breakdown}  # "social vs other channels": compare them all
    # "still around after a fortnight", "two weeks later": a time after signing up, not the period
    period, compare = compared if compared else (period_of(re.sub(
        r"\bafter (a|one|two|three|four|\d) (weeks?|fortnight)\b|\b(a|one|two|three|four|\d) weeks? later\b|"
        r"\ba fortnight later\b", " ", q), end), None)
    if previous is not None and previous.period != "all" and re.search(
            r"\b(the )?(week|month|period|days?) (before|prior)( to)?( that| it| this)?( one)?\b|\bthe previous "
            r"(one|week|month|period)\b", q):
        period = before(previous.period, end) or period  # "and the week before that?"
    signup = _signup_period(q, end)
    scores = intent_scores(" ".join(slots.without_values(q, named_values).split()))
    if off_topic := intent_scores(q).get("unsupported"):  # "spend on google ads": the words before a segment
        scores = {**scores, "unsupported": max(off_topic, scores.get("unsupported", 0))}
    if DROP_AT.search(q) and slots.step(q, v.steps):  # "dropping out at checkout": who drops at that step
        scores = {**scores, "dropoffs": scores.get("dropoffs", 0) + 1.5}
    if any(i.lower() in q or (n and re.sub(r"[-_]", " ", n.lower()) in re.sub(r"[-_]", " ", q))
           for i, n in v.experiments.items()):  # "the onboarding test", "one page checkout"
        scores = {**scores, "experiments": scores.get("experiments", 0) + 2}
    scores = dict(sorted(scores.items(), key=lambda kv: -kv[1]))
    if re.match(r"^\s*(with|select)\b", raw) is None:
        scores.pop("run_sql", None)  # a word corrected to "with" ("switch to Japan") is no SQL
    intent = next(iter(scores), None)
    if intent == "explain_item" and (previous is None or previous.intent not in {"scan", "explain_item"}):
        intent = next((i for i in scores if i != "explain_item"), None) if previous is None else "explain_item"
    if intent == "explain_item" and previous is not None:  # "tell me more about the second one"
        return replace(previous, text=text, intent="explain_item", item=_item(q) or 1, follow_up=True, premise=None,
                       scores=scores)
    follow = previous is not None and previous.intent not in {"help", "unsupported", "show_sql"} and (
        bool(FOLLOW_UP.match(q)) or intent is None) and bool(period or segment or breakdown or FOLLOW_UP.match(q))
    same_kind = {"funnel", "dropoffs", previous.intent if previous else ""} | (
        {"metric", "trends"} if previous and previous.intent in {"metric", "trends"} else set())
    reshape = re.match(r"^\s*(now )?(split|break|cut|slice) (it|that|this|them)\b", q)  # "split it by version"
    weak = FOLLOW_UP.match(q) and scores.get(intent, 0) < 1  # "compare with India": no analysis of its own
    if follow and (intent is None or intent in same_kind and FOLLOW_UP.match(q) or reshape or weak):
        swapped = set(segment) < set(previous.segment)  # "same for Chrome" after free users on Safari: the browser
        merged = ({**previous.segment, **segment} if _narrows(q) or swapped else segment) if segment \
            else previous.segment
        keep = breakdown or previous.breakdown
        if period is None and previous.intent != "retention":  # "what about week 46?": that ISO week
            period = _iso_week(q, end)
        if previous.intent == "retention" and signup and signup == period:  # "now for the September signups"
            period = None
        return replace(previous, text=text, period=period or previous.period, segment=merged,
                       signup_period=signup if previous.intent == "retention" and signup else previous.signup_period,
                       breakdown=None if keep in merged else keep, metric=slots.metric(q) or previous.metric,
                       week_n=_week_n(w.group(1)) if (w := re.search(r"\bweek[- ]?([1-9]|1[0-2])\b", q))
                       else previous.week_n,
                       metric_name=slots.named_metric(q, v.metrics) or previous.metric_name,
                       experiment_id=slots.experiment(q, v.experiments) or previous.experiment_id,
                       step=(previous.intent in scope.STEP_INTENTS and _named_step(q, v.steps)) or previous.step,
                       compare=compare or previous.compare, follow_up=True, premise=None, scores=scores)
    if v.dimension("version") in segment and re.search(r"\b(worse|hurt|break|broke|regress\w*)\b", q):
        scores = {**scores, "release": scores.get("release", 0) + 2.5}  # "did 5.7 make anything worse?"
        scores = dict(sorted(scores.items(), key=lambda kv: -kv[1]))
        intent = next(iter(scores))
    intent, named = _metric_intent(q, intent, v, strong_funnel=scores.get("funnel", 0) >= 2)
    if intent == "retention" and signup and signup == period and not compared:
        period = None  # "people who signed up in late September": their cohorts, over all their weeks
    if period is None and intent != "retention":
        period = _iso_week(q, end)  # "in week 46": this year's ISO week
    metric = slots.metric(q)
    if intent in {"why_change", "trends"} and metric is None and named in v.metrics:
        metric = named  # "why did AOV drop?": any metric of the catalog has a daily series
    if intent == "why_change" and metric is None and previous and previous.intent in {"trends", "why_change"}:
        metric, segment = previous.metric, segment or previous.segment  # "why did it change?" after a trend
    week = re.search(r"\bweek[- ]?(\d{1,2}) retention\b|\bretention (?:in|at|for) week (\d{1,2})\b|"
                     r"\bweek[- ]?([1-9]|1[0-2])\b(?! signups?| cohort)|"
                     r"\b(first|second|third|fourth|fifth|sixth|[1-9](?=st|nd|rd|th))(?:st|nd|rd|th)? week\b|"
                     r"\b(one|two|three|four|\d)[- ]week retention\b|\b(a|one|two|three|four|\d) weeks? later\b|"
                     r"\bweek[- ](one|two|three|four)\b|"
                     r"\b(one|two|three|four|\d) weeks? (?:in|on|out|after (?:sign\w*|join\w*))\b|"
                     r"\bafter (a|one|two|three|four|\d) weeks?\b|\b(?:after )?a (fortnight)(?: later)?\b",
                     q) if intent == "retention" else None
    sql = text[re.search(r"(?i)\b(with|select)\b", text).start():].strip() if intent == "run_sql" else None
    return Question(
        text=text, intent=intent or "unknown", period=period or "all", segment=segment, breakdown=breakdown,
        step=slots.step(q, v.steps), metric=metric or "conversion_rate",
        experiment_id=slots.experiment(q, v.experiments),
        week_n=_week_n(next(g for g in week.groups() if g)) if week else 1,
        entity=_entity(q), sql=sql, metric_name=named,
        compare=compare, signup_period=signup if intent == "retention" else None,
        premise=_premise(q, intent, metric or named),
        item=_item(q) if intent == "explain_item" else None, scores=scores,
    )


def _metric_intent(q: str, intent: str | None, v: Vocabulary, strong_funnel: bool = False
                   ) -> tuple[str | None, str | None]:
    """A definition question, or a metric of the metrics layer computed from its definition."""
    definition = DEFINITION.search(q)
    named = slots.named_metric(q, v.metrics)
    described = slots.described_metric(q, v.metrics)
    if definition:
        return "metric_definition", named or next(g for g in definition.groups() if g).strip(" ?.'\"")
    if intent == "metric" and named is None:
        return "metric", slots.metric(q) if slots.metric(q) in v.metrics else None
    series = bool(SERIES.search(q))
    # "put stuff in the cart and walk away" is the cart analysis, not the metric of cart adders
    walked = intent == "cart" and re.search(r"\babandon|\b(walk|wander)\w* (away|off)\b|\bleav\w*|\bleft\b", q)
    segments = intent == "dropoffs" and re.search(r"\b(which|what) (\w+ )?(cohorts?|segments?|groups?|kinds?|types?)\b",
                                                  q)
    if described and not series and intent not in {"trends", "why_change"} and not walked and not segments:
        return "metric", described  # "of those who added to cart, how many went on to buy": that metric
    if named and series and intent in {"cart", "search", "errors", "metric", "funnel", None} and not (
            intent == "funnel" and strong_funnel) and not re.search(r"\b(weekly|monthly|retention)\b", (
            f"{named} {v.metrics.get(named, '')}").lower().replace("_", " ")):
        return "trends", named  # "cart abandonment over time", "daily searches": a metric's daily series
    if named and intent in REPORTED and named not in REPORTED[intent] | ANALYSED_ELSEWHERE and not walked:
        return "metric", named  # "share of cart adders who went on to buy": a metric the analysis does not report
    if named and (intent is None or intent in ("trends", "metric") or intent == "funnel" and not strong_funnel) and (
            intent is None or named not in ANALYSED_ELSEWHERE and not series and not re.search(r"\bfunnel\b", q)):
        return "metric", named  # "MAU last month on Android" is computed from its definition
    if intent == "metric":
        return "metric", named
    if intent is None and (unknown := re.search(r"\bwhat(?:'s| is) (?:our|the) ([a-z][\w -]{1,30}?)\??$", q)):
        return "metric_definition", unknown.group(1)  # "what is our NPS?": say whether it is defined
    return intent, named


def _compared_values(q: str, segment: Segment) -> str | None:
    """The dimension of groups compared ("mobile compared to desktop", "UK vs Germany", "free vs plus vs pro"):
    a breakdown, not a filter."""
    if not re.search(r"\b(vs\.?|versus|compared? (to|with)|against|than|compar(e|ing) (the )?\w+ (for|of|on|in|from|"
                     r"between|among))\b|\b(better|worse|higher|lower|more|less)\b"
                     r".*\bor\b|\bor\b.*\b(better|worse|higher|lower|more|less)\b", q):
        return None
    return next((dim for dim, value in segment.items() if isinstance(value, list) and len(value) > 1), None)


def _named_step(q: str, steps: list[str]) -> str | None:
    """A step a follow-up names by a stage word ("what about at checkout?"), not by a stray word of a step's name."""
    found = slots.step(q, steps)
    return found if found and re.search(r"\b(at|before|during|into|to|the|for) (the )?[\w -]*(step|stage|page|"
                                        r"checkout|payment|pay|paying|cart|basket|order|ordering|purchase)\b", q) \
        else None


def _narrows(q: str) -> bool:
    """'and among those, on iOS?' narrows the previous segment; otherwise a new segment replaces it."""
    return bool(re.search(r"\b(within|among|of those|also|as well|in addition)\b", q))
