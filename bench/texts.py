"""What the synthetic speakers say: home-assistant questions, slow questions in phrases, TV lines, near misses.

All written for this project. No text here contains a wake word ("hey jarvis", "alexa", "okay nabu", 小乡小乡),
except WAKE_WORDS and the enrolment words; make_sets checks that.
"""

from __future__ import annotations

WAKE_WORDS = {"en": "Hey Jarvis", "cmn": "小乡小乡", "yue": "小鄉小鄉"}
"""What the asker says before the question in the endpoint set."""

QUESTIONS = {
    "en": [
        "What is the weather like tomorrow?",
        "Turn off the lights in the kitchen.",
        "Set a timer for ten minutes.",
        "Remind me to take my medicine at eight.",
        "What time is it?",
        "Play some music in the living room.",
        "Will it rain this afternoon?",
        "Turn the bedroom lights down to thirty percent.",
        "How cold is it going to be tonight?",
        "Set an alarm for half past six tomorrow morning.",
        "Switch on the heater in the study.",
        "How long is left on the pasta timer?",
        "Remind me to call my sister on Sunday.",
        "Is it going to be windy on Saturday?",
        "Turn on the porch light.",
        "What is on my calendar today?",
        "Cancel the kitchen timer.",
        "Close the curtains in the living room.",
        "Add milk and eggs to the shopping list.",
        "What is the temperature in the nursery?",
        "Lock the front door.",
        "Turn the volume down a little.",
        "Set the thermostat to twenty one degrees.",
        "Do I need an umbrella today?",
        "Dim the lights in the dining room.",
        "Remind me to water the plants tomorrow evening.",
        "How many minutes are left on the rice?",
        "Turn off the television in the bedroom.",
    ],
    "cmn": [
        "明天天气怎么样？",
        "把厨房的灯关掉。",
        "帮我定一个十分钟的计时器。",
        "提醒我下午三点吃药。",
        "现在几点了？",
        "在客厅放点音乐。",
        "今天下午会下雨吗？",
        "把卧室的灯调暗一点。",
        "今天晚上会有多冷？",
        "明天早上六点半叫我起床。",
        "打开书房的暖气。",
        "意大利面还要煮多久？",
        "提醒我星期天给我妹妹打电话。",
        "周六会不会刮大风？",
        "打开门口的灯。",
        "我今天有什么安排？",
        "取消厨房的计时器。",
        "把客厅的窗帘拉上。",
        "把牛奶和鸡蛋加到购物清单里。",
        "宝宝房间现在多少度？",
        "把前门锁上。",
        "声音小一点。",
        "空调调到二十六度。",
        "明天要不要带伞？",
        "帮我把电视关了。",
        "提醒我明天晚上给花浇水。",
    ],
    "yue": [
        "聽日天氣點樣？",
        "幫我熄咗廚房盞燈。",
        "幫我計十分鐘。",
        "提我下晝三點食藥。",
        "而家幾點呀？",
        "喺客廳播啲音樂。",
        "今日下晝會唔會落雨？",
        "將房嘅燈校暗啲。",
        "今晚會有幾凍？",
        "聽朝六點半叫醒我。",
        "開書房嘅暖爐。",
        "意粉仲要煮幾耐？",
        "提我禮拜日打電話畀我家姐。",
        "禮拜六會唔會打風？",
        "開門口盞燈。",
        "我今日有咩安排？",
        "取消廚房個計時器。",
        "拉埋客廳啲窗簾。",
        "幫我喺購物清單度加牛奶同雞蛋。",
        "嬰兒房而家幾多度？",
        "幫我鎖咗前門。",
        "校細聲啲。",
        "冷氣校去二十六度。",
        "聽日使唔使帶遮？",
        "幫我熄咗部電視。",
        "提我聽晚淋花。",
    ],
}
"""Fluent home-assistant requests."""

SLOW_QUESTIONS = {
    "en": [
        ["Remind me", "to call", "my daughter", "at six o'clock this evening."],
        ["What is the weather", "going to be like", "tomorrow morning?"],
        ["Could you turn on", "the lights", "in the living room?"],
        ["Set a timer", "for twenty minutes", "for the rice."],
        ["I would like to know", "what time", "the doctor is coming."],
        ["Please remind me", "to take", "my blood pressure pills", "after lunch."],
        ["Turn the heating up", "a little bit", "in the bedroom."],
        ["What day", "is it today?"],
        ["Can you", "play", "some old songs", "on the radio?"],
        ["Is it going to rain", "when I go", "to the market?"],
        ["Call my son", "and tell him", "dinner is ready."],
        ["How long", "until the tea", "is ready?"],
    ],
    "cmn": [
        ["提醒我", "晚上六点", "给我女儿", "打个电话。"],
        ["明天早上的天气", "怎么样？"],
        ["帮我把客厅的灯", "打开。"],
        ["给米饭", "定一个", "二十分钟的计时器。"],
        ["我想知道", "医生", "几点过来。"],
        ["提醒我", "吃完午饭以后", "量一下", "血压。"],
        ["把卧室的暖气", "开大一点。"],
        ["今天", "是星期几？"],
        ["给我放", "一些", "老歌", "好不好？"],
        ["我去菜市场的时候", "会不会下雨？"],
        ["给我儿子打个电话", "告诉他", "饭做好了。"],
        ["我的药", "放在哪里了？"],
    ],
    "yue": [
        ["提我", "今晚六點", "打電話", "畀我個女。"],
        ["聽朝啲天氣", "點樣呀？"],
        ["幫我開", "客廳", "盞燈。"],
        ["幫個飯", "計", "二十分鐘。"],
        ["我想知道", "醫生", "幾點過嚟。"],
        ["提我", "食完晏晝飯", "度下", "血壓。"],
        ["將房嘅暖爐", "開大少少。"],
        ["今日", "係禮拜幾呀？"],
        ["播啲", "舊歌", "畀我", "聽吖。"],
        ["我去街市嗰陣", "會唔會落雨呀？"],
        ["打畀我個仔", "同佢講", "啲飯煮好喇。"],
        ["我啲藥", "擺咗喺邊度呀？"],
    ],
}
"""Requests in phrases: slow speakers pause between them (1 to 3 pauses)."""

FILLERS = {
    "en": ["um", "uh", "er", "ummm"],
    "cmn": ["嗯", "呃", "那个", "就是"],
    "yue": ["嗯", "呃", "嗰個", "即係"],
}
"""Hesitations a slow speaker trails off with before a pause."""

TV = {
    "en": [
        "Good evening, and welcome to the six o'clock news.",
        "Heavy rain is expected across the north of the country tonight, with strong winds along the coast.",
        "The city council has approved a new plan to repair the old bridge over the river.",
        "Police are asking drivers to avoid the motorway after a lorry overturned this morning.",
        "In sport, the home team came back from two goals down to win in the final minute.",
        "Now, let's see what the weather has in store for the weekend.",
        "Temperatures will drop to around four degrees overnight, so wrap up warm.",
        "Tomorrow starts cloudy, but the sun should break through by the middle of the afternoon.",
        "First, we chop the onions finely and fry them gently in a little butter.",
        "Add the garlic, a pinch of salt, and let it cook until it smells wonderful.",
        "While that simmers, we can get on with the pastry.",
        "You want the oven nice and hot, about two hundred degrees.",
        "I told you already, I never went back to the house that night.",
        "Then who was it that the neighbours saw in the garden?",
        "Maybe you should ask your brother where he was at midnight.",
        "Don't you dare bring him into this, he has nothing to do with it.",
        "Fine, but sooner or later the truth is going to come out.",
        "Are you tired of waking up with a stiff back?",
        "Our new mattress adapts to your body, and it comes with a hundred night trial.",
        "Call now and get a second pillow absolutely free.",
        "The elephants walk for many hours each day in search of water.",
        "When the dry season ends, the plains turn green almost overnight.",
        "A young calf stays close to its mother for the first few years of its life.",
        "And the ball is played wide to the left, a lovely cross into the box.",
        "Oh, that's just over the bar, so close for the visitors.",
        "It's still nil nil here with twenty minutes to go.",
        "Our next contestant has come all the way from a small village by the sea.",
        "For one thousand points, which planet is known as the red planet?",
        "That is the correct answer, give her a big round of applause.",
        "The museum will reopen next month after a two year restoration.",
        "Scientists say the discovery could change the way we think about ancient farming.",
        "Traffic is moving slowly on the ring road because of road works near the station.",
        "Stay with us, after the break we'll be talking to the author of a new book on gardening.",
        "Welcome back, my guest tonight has spent forty years growing roses.",
        "The secret, she says, is patience and a great deal of compost.",
        "A train was delayed for three hours after a tree fell onto the line.",
        "The festival returns this summer with more than two hundred musicians.",
        "Shares rose slightly today as investors welcomed the latest figures.",
        "I'm afraid the doctor can't see you until next Thursday.",
        "Well, if that's the best you can do, I suppose I'll have to wait.",
        "Keep stirring so it doesn't catch on the bottom of the pan.",
        "The storm is expected to weaken as it moves inland on Tuesday.",
    ],
    "cmn": [
        "各位观众晚上好，欢迎收看今天的新闻节目。",
        "今天夜间到明天白天，北方大部分地区有中到大雨。",
        "受冷空气影响，本周末气温将下降六到八度。",
        "市政府宣布，地铁五号线将于下个月正式通车。",
        "今天上午，高速公路发生一起交通事故，目前道路已经恢复通行。",
        "接下来我们来看一下体育新闻。",
        "在昨晚的比赛中，主队在最后一分钟打进了制胜一球。",
        "首先把土豆切成小块，放进锅里煮十分钟。",
        "再加一点酱油和糖，用小火慢慢炖。",
        "这道菜做起来很简单，大家在家里都可以试一试。",
        "你为什么不告诉我，那天晚上你到底去了哪里？",
        "我已经说过很多遍了，我一直在公司加班。",
        "可是你的同事说，那天你六点就走了。",
        "好了，别吵了，我们坐下来好好谈一谈。",
        "这款洗衣机省水省电，现在购买还送一年保修。",
        "欢迎拨打屏幕下方的电话，名额有限，欲购从速。",
        "每年春天，成千上万只候鸟会飞到这片湿地。",
        "它们在这里休息几个星期，然后继续向北飞行。",
        "请听题，世界上最长的河流是哪一条？",
        "回答正确，恭喜你获得本轮的最高分。",
        "下面请欣赏一首大家都很熟悉的老歌。",
        "博物馆经过两年的修缮，将在下个月重新开放。",
        "专家提醒，天气转凉，老年人要注意保暖。",
        "今年的农业生产形势总体良好，粮食产量稳中有升。",
        "这位老师在山区教书已经三十年了。",
        "他说，看到孩子们一天天长大，是他最开心的事情。",
        "广告之后，我们继续为您播出精彩节目。",
        "今天的节目就到这里，感谢您的收看，我们明天再见。",
        "火车站附近道路施工，请司机朋友们注意绕行。",
        "这场音乐节将持续三天，有两百多位音乐人参加。",
        "妈妈，我回来了，今天晚上吃什么？",
        "快去洗手，饭马上就好了。",
    ],
    "yue": [
        "各位觀眾，晚上好，歡迎收睇今晚嘅新聞報道。",
        "天文台表示，今晚開始會有大雨同埋狂風。",
        "受冷鋒影響，呢個週末氣溫會明顯下降。",
        "政府宣佈，新嘅地鐵綫會喺下個月通車。",
        "今朝喺隧道入口發生咗一宗交通意外，而家交通已經恢復正常。",
        "跟住落嚟係體育新聞。",
        "喺尋晚嘅比賽入面，主隊喺最後一分鐘入咗致勝一球。",
        "首先將薯仔切細粒，放落煲度煮十分鐘。",
        "再加少少豉油同糖，用細火慢慢煮。",
        "呢個餸好易整，大家喺屋企都可以試下。",
        "你點解唔話我知，嗰晚你究竟去咗邊度？",
        "我講咗好多次啦，我一直喺公司開緊工。",
        "但係你同事話，嗰日你六點就走咗喎。",
        "好啦，唔好嗌交啦，大家坐低慢慢傾。",
        "呢部洗衣機慳水慳電，而家買仲送一年保養。",
        "請即致電熒幕下面嘅熱線，數量有限，售完即止。",
        "每年春天，成千上萬隻候鳥都會飛嚟呢片濕地。",
        "佢哋喺度休息幾個禮拜，然後再向北飛。",
        "請聽題，世界上最長嘅河流係邊一條？",
        "答啱咗，恭喜你攞到今輪最高分。",
        "博物館維修咗兩年，下個月會重新開放。",
        "專家提醒，天氣轉涼，長者要注意保暖。",
        "廣告之後，我哋繼續為你播出精彩節目。",
        "今日嘅節目就到呢度，多謝收睇，聽日再見。",
        "火車站附近有道路工程，司機要留意改道。",
        "媽咪，我返嚟喇，今晚食咩呀？",
        "快啲去洗手，就食得飯喇。",
        "呢間茶樓嘅蝦餃同燒賣都好出名。",
        "今晚有雷暴，大家出入要小心。",
        "佢做咗三十年老師，最開心就係見到啲學生大個。",
    ],
}
"""Unrelated lines a television says: news, weather, cooking, drama, adverts, nature, quiz, sport."""

PROSE = {
    "en": [
        "Every morning the baker opens his shop before sunrise. The smell of fresh bread drifts down the street, "
        "and the first customers are usually the bus drivers on their way to the depot. He knows most of them by "
        "name, and he knows exactly how they like their coffee.",
        "The old railway line has been turned into a path for walkers and cyclists. It runs for nearly thirty "
        "kilometres through farmland and small villages, crossing the river twice on iron bridges that were built "
        "more than a century ago. On summer weekends it is busy with families.",
        "Our neighbours keep chickens at the bottom of their garden. Every few days they leave a box of eggs on "
        "our doorstep, and in return we give them tomatoes and beans from our vegetable patch. Nobody ever "
        "agreed on this arrangement; it simply happened.",
        "The library in our town is small, but it is always full. Students come to study after school, older "
        "people read the newspapers, and on Saturday mornings a volunteer reads stories to the children in the "
        "corner by the window.",
        "When the power went out during the storm, we lit candles and played cards at the kitchen table. The "
        "wind howled around the house for hours, and a branch from the big oak tree came down in the lane. By "
        "morning the sky was clear and quiet again.",
        "My grandmother grew up on a farm in the hills. She still gets up at five every day, even though she "
        "has lived in the city for forty years. She says the mornings are the best part of the day, when the "
        "streets are empty and the birds are singing.",
    ],
    "cmn": [
        "今天早上我去市场买了一些新鲜的蔬菜和水果。天气很好，阳光明媚，街上有很多人在散步。",
        "我的奶奶住在乡下，她每天早上都会在院子里种花，喝茶，听收音机里的新闻。",
        "下个星期我们全家要去广州看望亲戚，顺便尝一尝那里有名的早茶和点心。",
        "孩子们放学以后喜欢在公园里踢足球，玩到天黑才肯回家吃晚饭。",
        "这个城市的地铁很方便，从东边到西边只需要四十分钟，票价也不贵。",
        "晚上大家一起看电视，聊聊一天发生的事情，然后早早地睡觉。",
        "楼下新开了一家面馆，老板是从兰州来的，他做的牛肉面又香又辣，每天中午都排着长队。",
        "周末我们去爬山，山上的空气特别新鲜，我们带了面包和水，在山顶休息了一个小时才下来。",
    ],
    "yue": [
        "今朝我去街市買咗啲新鮮嘅菜同生果。天氣好好，好多人喺街度行下。",
        "我阿嫲住喺鄉下，佢每朝都會喺院子度種花，飲茶，聽收音機嘅新聞。",
        "下個禮拜我哋成家人去廣州探親戚，順便試下嗰度出名嘅點心。",
        "啲細路放學之後鍾意喺公園踢波，玩到天黑先肯返屋企食飯。",
        "呢個城市嘅地鐵好方便，由東邊去到西邊只係要四十分鐘，車費都唔貴。",
        "夜晚大家一齊睇電視，傾下今日發生咗咩事，然後早啲瞓覺。",
        "樓下新開咗間麵舖，老闆整嘅牛腩麵又香又好食，每日中午都有好多人排隊。",
        "週末我哋去行山，山頂啲空氣特別清新，我哋帶咗麵包同水，喺山頂休息咗一個鐘先落山。",
    ],
}
"""Longer prose read aloud in the negative sets."""

CONFUSABLES = {
    "hey_jarvis": ["Hey Travis", "Hey Charlie", "Hey Marvin", "Jarvis", "Hey Davis", "Harvest"],
    "alexa": ["A Lexus", "Alexis", "Alaska", "Alex", "Elections", "Alexander"],
    "okay_nabu": ["Okay now", "Okay, no problem", "Okay Google", "Okay, Nadia", "Okay, navy", "Hey Siri"],
}
"""Near-miss phrases for each English wake word."""

ENROLL_WORD = "小乡小乡"
NEAR_MISSES = {
    "小香小香": "same syllables as the word (xiao3 xiang1 / siu2 hoeng1): a homophone in espeak-ng",
    "小张小张": "one initial changed (zhang1 / zoeng1)",
    "小乡": "half the word",
    "晓翔晓翔": "tone changed on the second syllable (xiang2 / cheung4)",
    "乡音": "shares one syllable",
}
"""Near misses of the enrolled word, with why each is near."""

ENROLL_CONTEXT = {
    "cmn": ["明天天气怎么样？", "帮我把灯打开。", "现在几点了？", "提醒我下午吃药。", "我回来了，今天好累啊。"],
    "yue": ["聽日天氣點樣？", "幫我開燈。", "而家幾點呀？", "提我下晝食藥。", "我返嚟喇，今日好攰呀。"],
}
"""Speech before or after the enrolled word in its longer test clips."""
